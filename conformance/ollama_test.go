package conformance

import "testing"

// TestOllamaNode drives the gateway's Ollama /api/chat endpoint with the
// ollama package for JavaScript through js/ollama_chat.mjs, once for each
// model.
func TestOllamaNode(t *testing.T) {
	node := nodeOrSkip(t, "ollama")
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			runNodeScript(t, node, "ollama_chat.mjs", m)
		})
	}
}
