// Shared plumbing of the conformance scripts: what they read from the
// environment, what the mock provider answers, and the loop that runs
// every check for every model and reports.
//
// Environment:
//   GATEWAY_URL     the gateway's base URL, e.g. http://127.0.0.1:PORT
//   LLMGATE_MODELS  the gateway models to check, comma-separated; each may
//                   be followed by =DIALECT, the dialect of the provider
//                   that serves it (openai, anthropic, ollama,
//                   responses, gemini or bedrock), e.g.
//                   gpt-test=openai,claude-test=anthropic,
//                   llama-test=ollama,resp-test=responses,
//                   gemini-test=gemini,bedrock-test=bedrock
//
// The gateway routes each model to the mock provider (internal/mockllm),
// which answers TEXT, or a call of the first declared tool with arguments
// {"city":"Paris"}, and reports INPUT_TOKENS input tokens, CACHED_TOKENS of
// them read from the cache (none in the Ollama dialect, which has no such
// count), and OUTPUT_TOKENS output tokens.

/** The mock's plain answer. */
export const TEXT = "Hello from mock";
/** The mock's usage, whatever the dialect. */
export const INPUT_TOKENS = 11;
export const CACHED_TOKENS = 3;
export const OUTPUT_TOKENS = 7;

/** The client's key; the gateway must never pass it on to a provider. */
export const CLIENT_KEY = "client-key";

/** Returns GATEWAY_URL, without a trailing slash. */
export function gatewayURL() {
  const base = process.env.GATEWAY_URL;
  if (!base) {
    throw new Error("GATEWAY_URL is not set");
  }
  return base.replace(/\/+$/, "");
}

/**
 * Returns the models of LLMGATE_MODELS as {name, dialect} objects; dialect
 * is undefined where the list does not say.
 */
export function models() {
  const list = (process.env.LLMGATE_MODELS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      const eq = item.lastIndexOf("=");
      return eq < 0
        ? { name: item, dialect: undefined }
        : { name: item.slice(0, eq), dialect: item.slice(eq + 1) };
    });
  if (list.length === 0) {
    throw new Error("LLMGATE_MODELS is not set");
  }
  return list;
}

/**
 * Runs every case for every model, printing "ok" or "FAIL" for each, and
 * sets a non-zero exit code if any failed. A case is [name, fn], and fn is
 * called with the model ({name, dialect}).
 */
export async function runChecks(script, cases) {
  const ms = models();
  let failed = 0;
  for (const model of ms) {
    for (const [name, fn] of cases) {
      try {
        await fn(model);
        console.log(`ok   ${model.name}: ${name}`);
      } catch (err) {
        failed++;
        console.error(`FAIL ${model.name}: ${name}: ${err?.stack ?? err}`);
      }
    }
  }
  const total = ms.length * cases.length;
  console.log(`${script}: ${total - failed} of ${total} checks passed`);
  if (failed > 0) {
    process.exitCode = 1;
  }
}

/** Runs main, turning an error it throws into a message and exit code 1. */
export function run(script, main) {
  main().catch((err) => {
    console.error(`${script}: ${err?.stack ?? err}`);
    process.exitCode = 1;
  });
}
