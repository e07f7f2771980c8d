// Conformance checks of the gateway's Anthropic Messages endpoint with the
// official @anthropic-ai/sdk package for JavaScript, in two versions that
// speak two wires:
//   - 0.137.0 (installed as "anthropic-classic"), the last 0.x: the key in
//     x-api-key, anthropic-version 2023-06-01;
//   - 1.13.0, the newest: the key as Authorization: Bearer,
//     anthropic-version 2026-10-21.
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT LLMGATE_MODELS=gpt-test,claude-test,llama-test,resp-test node anthropic_messages.mjs
//
// Every check runs for every model of LLMGATE_MODELS with both SDKs,
// whatever the dialect of the provider that serves it (see harness.mjs).
// The streamed checks use messages.stream() and finalMessage(), which
// check the order of the events and need an event: line on each. Exits
// non-zero if any check failed.

import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { VERSION as NEWEST_VERSION } from "@anthropic-ai/sdk/version";
import AnthropicClassic from "anthropic-classic";
import { VERSION as CLASSIC_VERSION } from "anthropic-classic/version";

import {
  CLIENT_KEY,
  INPUT_TOKENS,
  OUTPUT_TOKENS,
  TEXT,
  gatewayURL,
  run,
  runChecks,
} from "./harness.mjs";

/**
 * The SDKs under test: the version each must be (package.json pins them)
 * and the headers each must send (null: must not send it).
 */
const sdks = [
  {
    label: "@anthropic-ai/sdk 0.137.0 (classic)",
    Client: AnthropicClassic,
    version: CLASSIC_VERSION,
    wantVersion: "0.137.0",
    wire: {
      "x-api-key": CLIENT_KEY,
      authorization: null,
      "anthropic-version": "2023-06-01",
    },
  },
  {
    label: "@anthropic-ai/sdk 1.13.0",
    Client: Anthropic,
    version: NEWEST_VERSION,
    wantVersion: "1.13.0",
    wire: {
      "x-api-key": null,
      authorization: `Bearer ${CLIENT_KEY}`,
      "anthropic-version": "2026-10-21",
    },
  },
];

const tools = [
  {
    name: "get_weather",
    description: "Get the current weather in a city",
    input_schema: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
];

const weatherMessages = [
  { role: "user", content: "What is the weather in Paris?" },
];
const helloMessages = [{ role: "user", content: "Say hello." }];

/**
 * Returns a client of sdk pointed at the gateway, and the list into which
 * its fetch records every request it sends ({url, headers}).
 */
function newClient(sdk) {
  const sent = [];
  const client = new sdk.Client({
    apiKey: CLIENT_KEY,
    baseURL: gatewayURL(),
    maxRetries: 0,
    fetch: (url, init) => {
      sent.push({ url: String(url), headers: new Headers(init?.headers) });
      return fetch(url, init);
    },
  });
  return { client, sent };
}

/** Asserts that the last request in sent went to /v1/messages on sdk's wire. */
function assertWire(sdk, sent) {
  assert.ok(sent.length > 0, "the SDK sent no request");
  const { url, headers } = sent[sent.length - 1];
  assert.equal(new URL(url).pathname, "/v1/messages", "request path");
  for (const [name, want] of Object.entries(sdk.wire)) {
    assert.equal(headers.get(name), want, `request header ${name}`);
  }
}

/** Asserts that message.content is exactly one get_weather({"city":"Paris"}) tool_use. */
function assertToolUse(message) {
  assert.equal(message.stop_reason, "tool_use", "stop_reason");
  assert.equal(message.content.length, 1, `want one content block: ${JSON.stringify(message.content)}`);
  const block = message.content[0];
  assert.equal(block.type, "tool_use");
  assert.ok(block.id, "tool_use block has no id");
  assert.equal(block.name, "get_weather");
  assert.deepEqual(block.input, { city: "Paris" });
}

/** Asserts that message.content is exactly one text block with the mock's answer. */
function assertText(message) {
  assert.equal(message.stop_reason, "end_turn", "stop_reason");
  assert.equal(message.content.length, 1, `want one content block: ${JSON.stringify(message.content)}`);
  assert.equal(message.content[0].type, "text");
  assert.equal(message.content[0].text, TEXT);
}

/**
 * Asserts the token usage the mock reports, in Anthropic's terms:
 * input_tokens leaves out the tokens read from the cache, so input_tokens
 * + cache_read_input_tokens is the whole input. An Ollama provider has no
 * cache count, so there input_tokens alone is the whole input.
 */
function assertUsage(usage, model) {
  assert.ok(usage, "no usage");
  const cacheRead = usage.cache_read_input_tokens ?? 0;
  assert.equal(
    usage.input_tokens + cacheRead,
    INPUT_TOKENS,
    `usage.input_tokens (${usage.input_tokens}) + cache_read_input_tokens (${usage.cache_read_input_tokens})`,
  );
  if (model.dialect === "ollama") {
    assert.equal(usage.input_tokens, INPUT_TOKENS, "usage.input_tokens with an Ollama provider");
  }
  assert.equal(usage.cache_creation_input_tokens ?? 0, 0, "usage.cache_creation_input_tokens");
  assert.equal(usage.output_tokens, OUTPUT_TOKENS, "usage.output_tokens");
}

/**
 * Streams params through messages.stream() and returns the final message,
 * the types of the events in order and the text of the text events.
 */
async function stream(client, params) {
  const s = client.messages.stream(params);
  const types = [];
  let text = "";
  let inputJSON = "";
  s.on("streamEvent", (event) => types.push(event.type));
  s.on("text", (delta) => {
    text += delta;
  });
  s.on("inputJson", (partial) => {
    inputJSON += partial;
  });
  const message = await s.finalMessage();
  assert.equal(types[0], "message_start", `first event of ${JSON.stringify(types)}`);
  assert.equal(types[types.length - 1], "message_stop", `last event of ${JSON.stringify(types)}`);
  return { message, types, text, inputJSON };
}

/** The checks for one SDK; each takes the model. */
function casesFor(sdk) {
  const { client, sent } = newClient(sdk);
  return [
    [
      `${sdk.label}: version`,
      async () => {
        assert.equal(sdk.version, sdk.wantVersion, "installed SDK version");
      },
    ],
    [
      `${sdk.label}: non-streamed tool call`,
      async (model) => {
        const message = await client.messages.create({
          model: model.name,
          max_tokens: 1024,
          messages: weatherMessages,
          tools,
        });
        assertWire(sdk, sent);
        assertToolUse(message);
        assertUsage(message.usage, model);
      },
    ],
    [
      `${sdk.label}: streamed tool call (messages.stream)`,
      async (model) => {
        const { message, inputJSON } = await stream(client, {
          model: model.name,
          max_tokens: 1024,
          messages: weatherMessages,
          tools,
        });
        assertWire(sdk, sent);
        assertToolUse(message);
        assert.deepEqual(JSON.parse(inputJSON), { city: "Paris" }, "concatenated input_json_delta");
        assertUsage(message.usage, model);
      },
    ],
    [
      `${sdk.label}: non-streamed text`,
      async (model) => {
        const message = await client.messages.create({
          model: model.name,
          max_tokens: 1024,
          messages: helloMessages,
        });
        assertWire(sdk, sent);
        assertText(message);
        assertUsage(message.usage, model);
      },
    ],
    [
      `${sdk.label}: streamed text (messages.stream)`,
      async (model) => {
        const { message, text } = await stream(client, {
          model: model.name,
          max_tokens: 1024,
          messages: helloMessages,
        });
        assertWire(sdk, sent);
        assertText(message);
        assert.equal(text, TEXT, "concatenated text events");
        assertUsage(message.usage, model);
      },
    ],
  ];
}

async function main() {
  await runChecks("anthropic_messages.mjs", sdks.flatMap(casesFor));
}

run("anthropic_messages.mjs", main);
