// Conformance checks of the gateway's OpenAI Chat Completions endpoint with
// the official openai package for JavaScript.
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT node openai_chat.mjs
//
// The gateway must route the model "gpt-test" to the mock provider
// (internal/mockllm), which answers "Hello from mock", or a call of the
// first declared tool with arguments {"city":"Paris"}, with usage
// prompt_tokens=11 and completion_tokens=7. Exits non-zero on the first
// failed check.

import assert from "node:assert/strict";
import OpenAI from "openai";

const MODEL = "gpt-test";
const TEXT = "Hello from mock";
const PROMPT_TOKENS = 11;
const COMPLETION_TOKENS = 7;

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
  assert.equal(usage.prompt_tokens, PROMPT_TOKENS, "usage.prompt_tokens");
  assert.equal(usage.completion_tokens, COMPLETION_TOKENS, "usage.completion_tokens");
}

/** (a) A non-streamed completion with a tool. */
async function nonStreamedToolCall(client) {
  const completion = await client.chat.completions.create({
    model: MODEL,
    messages: weatherMessages,
    tools,
  });
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].finish_reason, "tool_calls");
  assertToolCall(completion.choices[0].message);
  assertUsage(completion.usage);
}

/** (b) A streamed tool call through the stream helper, with usage. */
async function streamedToolCall(client) {
  const stream = client.chat.completions.stream({
    model: MODEL,
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

/** (c) A streamed plain text answer through the stream helper. */
async function streamedText(client) {
  const stream = client.chat.completions.stream({
    model: MODEL,
    messages: helloMessages,
  });
  const completion = await stream.finalChatCompletion();
  assert.equal(completion.choices.length, 1, "want one choice");
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.equal(completion.choices[0].finish_reason, "stop");
}

/** (d) A raw stream, iterated, without stream_options: no usage anywhere. */
async function rawStreamWithoutUsage(client) {
  const stream = await client.chat.completions.create({
    model: MODEL,
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
  const base = process.env.GATEWAY_URL;
  if (!base) {
    throw new Error("GATEWAY_URL is not set");
  }
  const client = new OpenAI({
    apiKey: "client-key",
    baseURL: base + "/v1",
    maxRetries: 0,
  });
  const cases = [
    ["non-streamed tool call", nonStreamedToolCall],
    ["streamed tool call (stream helper)", streamedToolCall],
    ["streamed text (stream helper)", streamedText],
    ["raw stream without usage", rawStreamWithoutUsage],
  ];
  let failed = 0;
  for (const [name, fn] of cases) {
    try {
      await fn(client);
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.error(`FAIL ${name}: ${err?.stack ?? err}`);
    }
  }
  console.log(`openai_chat.mjs: ${cases.length - failed} of ${cases.length} checks passed`);
  if (failed > 0) {
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(`openai_chat.mjs: ${err?.stack ?? err}`);
  process.exitCode = 1;
});
