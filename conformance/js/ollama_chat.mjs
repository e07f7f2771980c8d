// Conformance checks of the gateway's Ollama native /api/chat endpoint with
// the ollama package for JavaScript.
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT LLMGATE_MODELS=gpt-test,claude-test,llama-test,resp-test node ollama_chat.mjs
//
// Every check runs for every model of LLMGATE_MODELS, whatever the dialect
// of the provider that serves it (see harness.mjs). Ollama has no
// tool-call done_reason: a tool call ends with done_reason "stop" and the
// call in message.tool_calls, its arguments an object. Usage is
// prompt_eval_count=11 and eval_count=7. The client sends the client key
// as a Bearer token, as one does to an Ollama behind a proxy, so that the
// Go test can check it never reaches the provider. Exits non-zero if any
// check failed.

import assert from "node:assert/strict";
import { Ollama } from "ollama";

import {
  CLIENT_KEY,
  INPUT_TOKENS,
  OUTPUT_TOKENS,
  TEXT,
  gatewayURL,
  run,
  runChecks,
} from "./harness.mjs";

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Get the current weather in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    },
  },
];

const weatherMessages = [
  { role: "user", content: "What is the weather in Paris?" },
];
const helloMessages = [{ role: "user", content: "Say hello." }];

/** Asserts that calls is exactly one get_weather({"city":"Paris"}) call. */
function assertToolCalls(calls) {
  assert.ok(Array.isArray(calls), `no tool_calls: ${JSON.stringify(calls)}`);
  assert.equal(calls.length, 1, `want exactly one tool call: ${JSON.stringify(calls)}`);
  assert.equal(calls[0].function.name, "get_weather");
  assert.deepEqual(calls[0].function.arguments, { city: "Paris" });
}

/** Asserts the final (done) answer's reason and token counts. */
function assertDone(response) {
  assert.equal(response.done, true, "done");
  assert.equal(response.done_reason, "stop", "done_reason");
  assert.equal(response.prompt_eval_count, INPUT_TOKENS, "prompt_eval_count");
  assert.equal(response.eval_count, OUTPUT_TOKENS, "eval_count");
}

/**
 * Streams request and returns the parts, the concatenated content and the
 * tool calls of all parts; checks that exactly the last part is done.
 */
async function stream(client, request) {
  const parts = [];
  let content = "";
  const calls = [];
  for await (const part of await client.chat({ ...request, stream: true })) {
    parts.push(part);
    content += part.message?.content ?? "";
    calls.push(...(part.message?.tool_calls ?? []));
  }
  assert.ok(parts.length > 0, "the stream had no part");
  const done = parts.filter((p) => p.done);
  assert.equal(done.length, 1, `want exactly one done part: ${JSON.stringify(parts)}`);
  assert.equal(parts[parts.length - 1].done, true, "the last part is not done");
  return { parts, content, calls, last: parts[parts.length - 1] };
}

function cases(client) {
  return [
    [
      "non-streamed tool call",
      async (model) => {
        const response = await client.chat({
          model: model.name,
          messages: weatherMessages,
          tools,
          stream: false,
        });
        assert.equal(response.message.role, "assistant");
        assertToolCalls(response.message.tool_calls);
        assertDone(response);
      },
    ],
    [
      "streamed tool call",
      async (model) => {
        const { calls, last } = await stream(client, {
          model: model.name,
          messages: weatherMessages,
          tools,
        });
        assertToolCalls(calls);
        assertDone(last);
      },
    ],
    [
      "non-streamed text",
      async (model) => {
        const response = await client.chat({
          model: model.name,
          messages: helloMessages,
          stream: false,
        });
        assert.equal(response.message.role, "assistant");
        assert.equal(response.message.content, TEXT);
        assert.ok(!response.message.tool_calls?.length, "unexpected tool calls");
        assertDone(response);
      },
    ],
    [
      "streamed text",
      async (model) => {
        const { content, calls, last } = await stream(client, {
          model: model.name,
          messages: helloMessages,
        });
        assert.equal(content, TEXT, "concatenated content");
        assert.equal(calls.length, 0, `unexpected tool calls: ${JSON.stringify(calls)}`);
        assertDone(last);
      },
    ],
  ];
}

async function main() {
  const client = new Ollama({
    host: gatewayURL(),
    headers: { Authorization: `Bearer ${CLIENT_KEY}` },
  });
  await runChecks("ollama_chat.mjs", cases(client));
}

run("ollama_chat.mjs", main);
