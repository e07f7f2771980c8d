// Conformance checks of the gateway's OpenAI Responses endpoint
// (POST /v1/responses) with the official openai package for JavaScript.
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT LLMGATE_MODELS=gpt-test,claude-test,llama-test,resp-test node openai_responses.mjs
//
// Every check runs for every model of LLMGATE_MODELS, whatever the dialect
// of the provider that serves it (see harness.mjs for the environment and
// for what the mock provider answers): an assistant message whose
// output_text is "Hello from mock", or a function_call item of the first
// declared tool with arguments {"city":"Paris"}, with usage input_tokens=11
// (input_tokens_details.cached_tokens=3, or 0 with an Ollama provider,
// which has no cache count) and output_tokens=7.
//
// The gateway keeps no state: every request says store: false, and one
// with previous_response_id must get a 400 (except to a Responses
// provider, where it passes through: that provider keeps the state). The streamed checks use
// responses.stream() and finalResponse(), which check the output item
// lifecycle, and a raw responses.create({stream: true}) iteration; both
// check that sequence_number counts up by one from 0 and that
// response.created comes first and response.completed last (the stream
// helper does not itself fail when response.completed is missing). Exits
// non-zero if any check failed.

import assert from "node:assert/strict";
import OpenAI from "openai";

import {
  CACHED_TOKENS,
  CLIENT_KEY,
  INPUT_TOKENS,
  OUTPUT_TOKENS,
  TEXT,
  gatewayURL,
  run,
  runChecks,
} from "./harness.mjs";

/** get_weather in the Responses shape: flat, not nested under "function". */
const tools = [
  {
    type: "function",
    name: "get_weather",
    description: "Get the current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
];

const weatherInput = [
  { role: "user", content: "What is the weather in Paris?" },
];

/** The request bodies of the checks for the model named model. */
function weatherParams(model) {
  return { model, input: weatherInput, tools, store: false };
}
function helloParams(model) {
  return {
    model,
    instructions: "You are a friendly assistant.",
    input: "Say hello.",
    store: false,
  };
}

/** Asserts that the last request in sent went to /v1/responses with the client key. */
function assertWire(sent) {
  assert.ok(sent.length > 0, "the SDK sent no request");
  const { url, headers } = sent[sent.length - 1];
  assert.equal(new URL(url).pathname, "/v1/responses", "request path");
  assert.equal(headers.get("authorization"), `Bearer ${CLIENT_KEY}`, "request header authorization");
}

/**
 * Asserts that response is completed and its output is exactly one
 * completed get_weather function_call item with a call_id and arguments
 * {"city":"Paris"}.
 */
function assertToolCall(response) {
  assert.equal(response.object, "response", "object");
  assert.equal(response.status, "completed", "status");
  assert.equal(response.output.length, 1, `want one output item: ${JSON.stringify(response.output)}`);
  const item = response.output[0];
  assert.equal(item.type, "function_call", `output item: ${JSON.stringify(item)}`);
  assert.equal(item.name, "get_weather");
  assert.ok(item.call_id, `function_call has no call_id: ${JSON.stringify(item)}`);
  assert.equal(item.status, "completed", "function_call status");
  assert.equal(typeof item.arguments, "string", "function_call arguments must be a JSON string");
  assert.deepEqual(JSON.parse(item.arguments), { city: "Paris" });
  assert.equal(response.output_text ?? "", "", "output_text next to the tool call");
}

/**
 * Asserts that response is completed and its output is exactly one
 * assistant message with one output_text part holding the mock's answer.
 */
function assertText(response) {
  assert.equal(response.object, "response", "object");
  assert.equal(response.status, "completed", "status");
  assert.equal(response.output.length, 1, `want one output item: ${JSON.stringify(response.output)}`);
  const item = response.output[0];
  assert.equal(item.type, "message", `output item: ${JSON.stringify(item)}`);
  assert.equal(item.role, "assistant");
  assert.equal(item.content.length, 1, `want one content part: ${JSON.stringify(item.content)}`);
  assert.equal(item.content[0].type, "output_text");
  assert.equal(item.content[0].text, TEXT);
  assert.equal(response.output_text, TEXT, "output_text");
}

/**
 * Asserts the token usage the mock reports, in the Responses terms:
 * input_tokens counts the cached tokens too; cached_tokens is what the
 * provider reports as read from its cache (an Ollama provider has no such
 * count).
 */
function assertUsage(usage, model) {
  assert.ok(usage, "no usage");
  assert.equal(usage.input_tokens, INPUT_TOKENS, "usage.input_tokens");
  assert.equal(usage.output_tokens, OUTPUT_TOKENS, "usage.output_tokens");
  assert.equal(usage.total_tokens, INPUT_TOKENS + OUTPUT_TOKENS, "usage.total_tokens");
  assert.ok(usage.input_tokens_details, `usage has no input_tokens_details: ${JSON.stringify(usage)}`);
  const wantCached = model.dialect === "ollama" ? 0 : CACHED_TOKENS;
  assert.equal(
    usage.input_tokens_details.cached_tokens,
    wantCached,
    `usage.input_tokens_details.cached_tokens (${model.dialect} provider)`,
  );
}

/**
 * Asserts the lifecycle of events, a whole stream in order: sequence_number
 * counts up by one from 0, response.created comes first and
 * response.completed last (once), every event for an output index comes
 * between that index's output_item.added and output_item.done, no index is
 * added twice, and no error, response.failed or response.incomplete
 * appears. Returns the concatenated output_text and function-call argument
 * deltas, and the response of response.completed.
 */
function assertLifecycle(events) {
  const types = events.map((e) => e.type);
  const where = `events ${JSON.stringify(types)}`;
  assert.ok(events.length > 0, "the stream had no event");
  events.forEach((e, i) => {
    assert.equal(e.sequence_number, i, `sequence_number of event ${i} (${e.type}) in ${where}`);
  });
  assert.equal(types[0], "response.created", `first of ${where}`);
  assert.equal(types[types.length - 1], "response.completed", `last of ${where}`);
  assert.equal(types.filter((t) => t === "response.completed").length, 1, `one response.completed in ${where}`);
  const open = new Map();
  const done = new Set();
  let text = "";
  let args = "";
  for (const [i, e] of events.entries()) {
    assert.ok(
      !["error", "response.failed", "response.incomplete"].includes(e.type),
      `event ${i} is ${e.type}: ${JSON.stringify(e)}`,
    );
    if (e.type === "response.output_item.added") {
      assert.ok(
        !open.has(e.output_index) && !done.has(e.output_index),
        `event ${i} adds output index ${e.output_index} a second time`,
      );
      open.set(e.output_index, e.item.type);
    } else if (e.type === "response.output_item.done") {
      assert.ok(open.has(e.output_index), `event ${i} closes output index ${e.output_index}, which is not open`);
      open.delete(e.output_index);
      done.add(e.output_index);
    } else if ("output_index" in e) {
      assert.ok(open.has(e.output_index), `event ${i} (${e.type}) is for output index ${e.output_index}, which is not open`);
      if (e.type === "response.output_text.delta") {
        text += e.delta;
      } else if (e.type === "response.function_call_arguments.delta") {
        args += e.delta;
      }
    }
  }
  assert.equal(open.size, 0, `output indexes ${[...open.keys()]} were added but never done in ${where}`);
  return { text, args, completed: events[events.length - 1].response };
}

/**
 * Streams params through responses.stream() and returns the final
 * response, the events in order (checked by assertLifecycle) and the
 * concatenated deltas the helper's delta events reported.
 */
async function streamHelper(client, params) {
  const s = client.responses.stream(params);
  const events = [];
  let text = "";
  let args = "";
  s.on("event", (event) => events.push(event));
  s.on("response.output_text.delta", (event) => {
    text += event.delta;
  });
  s.on("response.function_call_arguments.delta", (event) => {
    args += event.delta;
  });
  const response = await s.finalResponse();
  const lifecycle = assertLifecycle(events);
  assert.equal(lifecycle.text, text, "output_text deltas of the event and delta listeners");
  assert.equal(lifecycle.args, args, "function_call_arguments deltas of the event and delta listeners");
  return { response, events, text, args, completed: lifecycle.completed };
}

/** Iterates a raw responses.create({stream: true}) and returns its events. */
async function rawStream(client, params) {
  const stream = await client.responses.create({ ...params, stream: true });
  const events = [];
  for await (const event of stream) {
    events.push(event);
  }
  return events;
}

function cases(client, sent) {
  return [
    [
      "non-streamed tool call",
      async (model) => {
        const response = await client.responses.create(weatherParams(model.name));
        assertWire(sent);
        assertToolCall(response);
        assertUsage(response.usage, model);
      },
    ],
    [
      "streamed tool call (responses.stream)",
      async (model) => {
        const { response, args, completed } = await streamHelper(client, weatherParams(model.name));
        assertWire(sent);
        assertToolCall(response);
        assertToolCall(completed);
        assert.deepEqual(JSON.parse(args), { city: "Paris" }, "concatenated function_call_arguments deltas");
        assertUsage(response.usage, model);
      },
    ],
    [
      "non-streamed text",
      async (model) => {
        const response = await client.responses.create(helloParams(model.name));
        assertWire(sent);
        assertText(response);
        assertUsage(response.usage, model);
      },
    ],
    [
      "streamed text (responses.stream)",
      async (model) => {
        const { response, text, completed } = await streamHelper(client, helloParams(model.name));
        assertWire(sent);
        assertText(response);
        assert.equal(completed.status, "completed", "status of response.completed");
        assert.equal(text, TEXT, "concatenated output_text deltas");
        assertUsage(response.usage, model);
      },
    ],
    [
      "raw stream, tool call",
      async (model) => {
        const events = await rawStream(client, weatherParams(model.name));
        assertWire(sent);
        const { text, args, completed } = assertLifecycle(events);
        assert.equal(text, "", "output_text deltas next to the tool call");
        assert.deepEqual(JSON.parse(args), { city: "Paris" }, "concatenated function_call_arguments deltas");
        assert.ok(completed.output.length > 0, "response.completed has no output");
        assertToolCall({ ...completed, output_text: "" });
        assertUsage(completed.usage, model);
      },
    ],
    [
      "raw stream, text",
      async (model) => {
        const events = await rawStream(client, helloParams(model.name));
        assertWire(sent);
        const { text, args, completed } = assertLifecycle(events);
        assert.equal(text, TEXT, "concatenated output_text deltas");
        assert.equal(args, "", "function_call_arguments deltas next to the text");
        assertText({ ...completed, output_text: TEXT });
        assertUsage(completed.usage, model);
      },
    ],
    [
      "previous_response_id is refused",
      async (model) => {
        if (model.dialect === "responses") {
          await client.responses.create({ ...helloParams(model.name), previous_response_id: "resp_abc123" });
          return;
        }
        let error;
        try {
          await client.responses.create({
            ...helloParams(model.name),
            previous_response_id: "resp_abc123",
          });
        } catch (err) {
          error = err;
        }
        assert.ok(error, "responses.create with previous_response_id succeeded");
        assertWire(sent);
        assert.ok(error instanceof OpenAI.BadRequestError, `want a BadRequestError, got ${error?.stack ?? error}`);
        assert.equal(error.status, 400, "status");
        assert.equal(error.param, "previous_response_id", `error.param of ${JSON.stringify(error.error)}`);
        assert.ok(error.type, `error.type of ${JSON.stringify(error.error)}`);
        assert.match(error.message, /previous_response_id/, "error message");
      },
    ],
  ];
}

async function main() {
  const sent = [];
  const client = new OpenAI({
    apiKey: CLIENT_KEY,
    baseURL: gatewayURL() + "/v1",
    maxRetries: 0,
    fetch: (url, init) => {
      sent.push({ url: String(url), headers: new Headers(init?.headers) });
      return fetch(url, init);
    },
  });
  await runChecks("openai_responses.mjs", cases(client, sent));
}

run("openai_responses.mjs", main);
