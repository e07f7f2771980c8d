// Conformance checks of the gateway's OpenAI Chat Completions endpoint with
// the official openai package for JavaScript.
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT LLMGATE_MODELS=gpt-test,claude-test,llama-test,resp-test node openai_chat.mjs
//
// Every check runs for every model of LLMGATE_MODELS, whatever the dialect
// of the provider that serves it (see harness.mjs for the environment and
// for what the mock provider answers): "Hello from mock", or a call of the
// first declared tool with arguments {"city":"Paris"}, with usage
// prompt_tokens=11 and completion_tokens=7. Exits non-zero if any check
// failed.

import assert from "node:assert/strict";
import OpenAI from "openai";

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

/** Asserts that message carries exactly one get_weather({"city":"Paris"}) call. */
function assertToolCall(message) {
  assert.ok(Array.isArray(message.tool_calls), "message has no tool_calls");
  assert.equal(message.tool_calls.length, 1, "want exactly one tool call");
  const call = message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.ok(call.id, "tool call has no id");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
}

/** Asserts the token usage the mock reports. */
function assertUsage(usage) {
  assert.ok(usage, "no usage");
  assert.equal(usage.prompt_tokens, INPUT_TOKENS, "usage.prompt_tokens");
  assert.equal(usage.completion_tokens, OUTPUT_TOKENS, "usage.completion_tokens");
}

/** (a) A non-streamed completion with a tool. */
async function nonStreamedToolCall(client, model) {
  const completion = await client.chat.completions.create({
    model,
    messages: weatherMessages,
    tools,
  });
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].finish_reason, "tool_calls");
  assertToolCall(completion.choices[0].message);
  assertUsage(completion.usage);
}

/** (b) A streamed tool call through the stream helper, with usage. */
async function streamedToolCall(client, model) {
  const stream = client.chat.completions.stream({
    model,
    messages: weatherMessages,
    tools,
    stream_options: { include_usage: true },
  });
  const completion = await stream.finalChatCompletion();
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].finish_reason, "tool_calls");
  assertToolCall(completion.choices[0].message);
  assertUsage(completion.usage);
}

/** (c) A non-streamed plain text answer. */
async function nonStreamedText(client, model) {
  const completion = await client.chat.completions.create({
    model,
    messages: helloMessages,
  });
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.equal(completion.choices[0].finish_reason, "stop");
  assert.ok(!completion.choices[0].message.tool_calls?.length, "unexpected tool calls");
  assertUsage(completion.usage);
}

/** (d) A streamed plain text answer through the stream helper, with usage. */
async function streamedText(client, model) {
  const stream = client.chat.completions.stream({
    model,
    messages: helloMessages,
    stream_options: { include_usage: true },
  });
  const completion = await stream.finalChatCompletion();
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.equal(completion.choices[0].finish_reason, "stop");
  assertUsage(completion.usage);
}

/** (e) A raw stream, iterated, without stream_options: no usage anywhere. */
async function rawStreamWithoutUsage(client, model) {
  const stream = await client.chat.completions.create({
    model,
    messages: helloMessages,
    stream: true,
  });
  let content = "";
  let chunks = 0;
  let finishReason = null;
  for await (const chunk of stream) {
    chunks++;
    assert.ok(
      chunk.usage === undefined || chunk.usage === null,
      `chunk ${chunks} carries usage without stream_options.include_usage: ${JSON.stringify(chunk)}`,
    );
    for (const choice of chunk.choices) {
      content += choice.delta?.content ?? "";
      finishReason = choice.finish_reason ?? finishReason;
    }
  }
  assert.ok(chunks > 0, "the stream had no chunk");
  assert.equal(content, TEXT);
  assert.equal(finishReason, "stop");
}

async function main() {
  const client = new OpenAI({
    apiKey: CLIENT_KEY,
    baseURL: gatewayURL() + "/v1",
    maxRetries: 0,
  });
  const cases = [
    ["non-streamed tool call", nonStreamedToolCall],
    ["streamed tool call (stream helper)", streamedToolCall],
    ["non-streamed text", nonStreamedText],
    ["streamed text (stream helper)", streamedText],
    ["raw stream without usage", rawStreamWithoutUsage],
  ];
  await runChecks(
    "openai_chat.mjs",
    cases.map(([name, fn]) => [name, (model) => fn(client, model.name)]),
  );
}

run("openai_chat.mjs", main);
