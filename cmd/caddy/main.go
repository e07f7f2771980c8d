// Command caddy is Caddy with the standard modules and the caddy-llmgate
// gateway compiled in. It exists so the gateway can be built with plain
// `go build ./cmd/caddy` (no xcaddy, no network beyond the module cache);
// xcaddy.sh produces the same binary.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/llmgate/caddy-llmgate"
)

func main() {
	caddycmd.Main()
}
