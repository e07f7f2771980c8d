// Conformance checks of the gateway's Gemini endpoints with the official
// @google/genai package for JavaScript (3.3.0, which calls
// /v1/models/{model}:generateContent and :streamGenerateContent?alt=sse
// by default, the key in x-goog-api-key; one check asks for /v1beta, the
// path older versions and the Go SDK call).
//
// Usage: GATEWAY_URL=http://127.0.0.1:PORT LLMGATE_MODELS=gpt-test=openai,gemini-test=gemini node gemini.mjs
//
// Every check runs for every model of LLMGATE_MODELS, whatever the dialect
// of the provider that serves it (see harness.mjs for the environment and
// for what the mock provider answers): "Hello from mock", or a call of the
// declared function with args {"city":"Paris"}, with usageMetadata
// promptTokenCount=11 (cachedContentTokenCount=3 of them, none from an
// Ollama provider) and candidatesTokenCount=7. Exits non-zero if any check
// failed.

import assert from "node:assert/strict";
import { GoogleGenAI, Type } from "@google/genai";

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

const tools = [
  {
    functionDeclarations: [
      {
        name: "get_weather",
        description: "Get the current weather in a city",
        parameters: {
          type: Type.OBJECT,
          properties: { city: { type: Type.STRING } },
          required: ["city"],
        },
      },
    ],
  },
];

const weather = "What is the weather in Paris?";
const hello = "Say hello.";

/**
 * The id the provider of a dialect gives the mock's tool call, which the
 * gateway must hand on; undefined where the provider gives none.
 */
const providerCallIDs = {
  openai: "call_mock1",
  responses: "call_mock1",
  anthropic: "toolu_mock1",
  bedrock: "tooluse_mock1",
};

/**
 * Asserts that calls is exactly one get_weather({"city":"Paris"}) call,
 * with the provider's id; where the provider gave none, one the gateway
 * made up, except from a Gemini provider, whose answer passes through as
 * it came (no id).
 */
function assertCall(calls, model) {
  assert.ok(Array.isArray(calls), "no function calls");
  assert.equal(calls.length, 1, "want exactly one function call");
  const [call] = calls;
  assert.equal(call.name, "get_weather");
  assert.deepEqual(call.args, { city: "Paris" });
  const want = providerCallIDs[model.dialect];
  if (want !== undefined) {
    assert.equal(call.id, want, `function call id (${model.dialect} provider)`);
  } else if (model.dialect === "gemini") {
    assert.equal(call.id, undefined, "function call id from a Gemini provider that sent none");
  } else {
    assert.ok(call.id, `function call from the ${model.dialect} provider has no id`);
  }
}

/** Asserts the usage the mock reports, in Gemini's terms. */
function assertUsage(usage, model) {
  assert.ok(usage, "no usageMetadata");
  assert.equal(usage.promptTokenCount, INPUT_TOKENS, "usageMetadata.promptTokenCount");
  assert.equal(usage.candidatesTokenCount, OUTPUT_TOKENS, "usageMetadata.candidatesTokenCount");
  assert.equal(
    usage.cachedContentTokenCount ?? 0,
    model.dialect === "ollama" ? 0 : CACHED_TOKENS,
    `usageMetadata.cachedContentTokenCount (${model.dialect} provider)`,
  );
  assert.equal(usage.totalTokenCount, INPUT_TOKENS + OUTPUT_TOKENS, "usageMetadata.totalTokenCount");
}

/** Asserts one candidate that ended with STOP. */
function assertStop(response) {
  assert.equal(response.candidates?.length, 1, "want one candidate");
  assert.equal(response.candidates[0].finishReason, "STOP");
}

/**
 * Streams a request and adds the chunks up: the text, the function
 * calls, the last finishReason (only the last chunk may have one) and
 * the last usageMetadata (Gemini's is cumulative).
 */
async function stream(ai, params) {
  const chunks = await ai.models.generateContentStream(params);
  let text = "";
  const calls = [];
  let finishReason;
  let usage;
  let n = 0;
  for await (const chunk of chunks) {
    n++;
    assert.equal(finishReason, undefined, `chunk ${n} follows the chunk with finishReason ${finishReason}`);
    for (const part of chunk.candidates?.[0]?.content?.parts ?? []) {
      text += part.text ?? "";
      if (part.functionCall) {
        calls.push(part.functionCall);
      }
    }
    finishReason = chunk.candidates?.[0]?.finishReason ?? finishReason;
    usage = chunk.usageMetadata ?? usage;
  }
  assert.ok(n > 0, "the stream had no chunk");
  return { text, calls, finishReason, usage };
}

/** (a) generateContent with a function declared. */
async function functionCall(ai, model) {
  const response = await ai.models.generateContent({ model: model.name, contents: weather, config: { tools } });
  assertStop(response);
  assertCall(response.functionCalls, model);
  assertUsage(response.usageMetadata, model);
}

/** (b) generateContentStream with a function declared. */
async function streamedFunctionCall(ai, model) {
  const s = await stream(ai, { model: model.name, contents: weather, config: { tools } });
  assert.equal(s.finishReason, "STOP");
  assert.equal(s.text, "", "text beside the function call");
  assertCall(s.calls, model);
  assertUsage(s.usage, model);
}

/** (c) generateContent, a plain text answer. */
async function text(ai, model) {
  const response = await ai.models.generateContent({ model: model.name, contents: hello });
  assertStop(response);
  assert.equal(response.text, TEXT);
  assert.equal(response.functionCalls, undefined, "unexpected function calls");
  assertUsage(response.usageMetadata, model);
}

/** (d) generateContentStream, a plain text answer. */
async function streamedText(ai, model) {
  const s = await stream(ai, { model: model.name, contents: hello });
  assert.equal(s.text, TEXT);
  assert.equal(s.finishReason, "STOP");
  assert.equal(s.calls.length, 0, "unexpected function calls");
  assertUsage(s.usage, model);
}

/**
 * (e) The function's result sent back: the model's turn as it came, then
 * a functionResponse with the call's id and name; the answer must be a
 * clean one (the mock calls the declared function again).
 */
async function functionResponse(ai, model) {
  const first = await ai.models.generateContent({ model: model.name, contents: weather, config: { tools } });
  const [call] = first.functionCalls ?? [];
  assert.ok(call, "no function call to answer");
  const contents = [
    { role: "user", parts: [{ text: weather }] },
    first.candidates[0].content,
    {
      role: "user",
      parts: [{ functionResponse: { id: call.id, name: call.name, response: { output: "sunny, 21 °C" } } }],
    },
  ];
  const response = await ai.models.generateContent({ model: model.name, contents, config: { tools } });
  assertStop(response);
  assertCall(response.functionCalls, model);
  assertUsage(response.usageMetadata, model);
}

async function main() {
  const ai = new GoogleGenAI({ apiKey: CLIENT_KEY, httpOptions: { baseUrl: gatewayURL() } });
  const v1beta = new GoogleGenAI({
    apiKey: CLIENT_KEY,
    httpOptions: { baseUrl: gatewayURL(), apiVersion: "v1beta" },
  });
  await runChecks("gemini.mjs", [
    ["generateContent function call", (model) => functionCall(ai, model)],
    ["generateContentStream function call", (model) => streamedFunctionCall(ai, model)],
    ["generateContent text", (model) => text(ai, model)],
    ["generateContentStream text", (model) => streamedText(ai, model)],
    ["functionResponse with the call's id", (model) => functionResponse(ai, model)],
    ["generateContent text on /v1beta", (model) => text(v1beta, model)],
    ["generateContentStream function call on /v1beta", (model) => streamedFunctionCall(v1beta, model)],
  ]);
}

run("gemini.mjs", main);
