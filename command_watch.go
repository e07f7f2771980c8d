package llmgate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/llmgate/caddy-llmgate/contextbuf/watch"
)

// watchKeyEnv is the environment variable the watch command reads the key
// from when --key is not given.
const watchKeyEnv = "LLMGATE_KEY"

// watchCommand is `caddy llm watch`: keep a directory's text files in the
// gateway's delta context buffer.
//
//	caddy llm watch <dir> --proxy <url> [--id <name>] [--ignore <pattern>]...
//	    [--key <key>] [--debounce 300ms] [--max-file-size 1MiB]
//
// It scans dir (honouring .gitignore files and the --ignore patterns,
// leaving out binary files, symbolic links, .git and files over
// --max-file-size), sends the gateway at --proxy a full snapshot under
// the context id --id (default: the directory's name), then watches the
// tree and sends a unified diff after each burst of changes, until
// interrupted (SIGINT or SIGTERM). The key is read from LLMGATE_KEY
// unless --key is given (a flag is visible to other users in ps; prefer
// the environment variable).
func watchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch <dir> --proxy <url> [--id <name>]",
		Short: "Keep a directory's text files in the gateway's context buffer, sending only diffs",
		Long: `Watches a directory and keeps a copy of its text files in the gateway's
delta context buffer (POST <proxy>/v1/context/delta): a full snapshot at
start, then only unified diffs of what changed, so a project's context
(for example the analysis files a code-to-LLM tool writes) lives in the
gateway under one id.

Files ignored by the .gitignore files of the tree or by an --ignore
pattern (gitignore syntax, relative to <dir>; repeatable; a "!pattern"
re-includes), anything under .git, binary files, symbolic links and
files larger than --max-file-size are left out.

When the gateway is down or busy the watcher keeps watching and retries
with backoff; everything changed meanwhile is sent once it is back. When
the gateway's copy was changed by someone else it sends a full snapshot.
It stops on SIGINT/SIGTERM, or when the gateway refuses the key (401) or
the context is too large (413).

The key is read from the environment variable LLMGATE_KEY, or from
--key (prefer the environment: a flag is visible to other users in ps).
The key is never printed.

  caddy llm watch ./analysis --proxy https://gateway.example.com --id myproject
  LLMGATE_KEY=... caddy llm watch . --proxy http://localhost:8080 --ignore '*.log' --ignore 'tmp/'`,
		Args: cobra.ExactArgs(1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdWatch),
	}
	f := cmd.Flags()
	f.String("proxy", "", "the gateway's URL, e.g. https://gateway.example.com or http://localhost:8080 (required)")
	f.String("id", "", "the context's id in the gateway (default: the directory's name)")
	f.StringArray("ignore", nil, "a gitignore-style pattern of files to leave out (repeatable)")
	f.String("key", "", "the gateway key (default: $"+watchKeyEnv+"; prefer the variable, a flag shows in ps)")
	f.Duration("debounce", watch.DefaultDebounce, "how long the tree must stay quiet before changes are sent")
	f.String("max-file-size", "1MiB", "files larger than this are left out (e.g. 512KB, 2MiB)")
	return cmd
}

func cmdWatch(fl caddycmd.Flags) (int, error) {
	if fl.NArg() != 1 {
		return 2, fmt.Errorf("give exactly one directory to watch")
	}
	proxy := fl.String("proxy")
	if proxy == "" {
		return 2, fmt.Errorf("--proxy is required (the gateway's URL, e.g. http://localhost:8080)")
	}
	maxSize, err := humanize.ParseBytes(fl.String("max-file-size"))
	if err != nil || maxSize == 0 || maxSize > 1<<40 {
		return 2, fmt.Errorf("--max-file-size: %q is not a size like 512KB or 2MiB", fl.String("max-file-size"))
	}
	debounce, err := fl.GetDuration("debounce")
	if err != nil || debounce < 0 {
		return 2, fmt.Errorf("--debounce must be a duration like 300ms")
	}
	ignore, err := fl.GetStringArray("ignore")
	if err != nil {
		return 2, err
	}
	key := fl.String("key")
	if key == "" {
		key = os.Getenv(watchKeyEnv)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = watch.Run(ctx, watch.Options{
		Dir:         fl.Arg(0),
		Proxy:       proxy,
		ID:          fl.String("id"),
		Key:         key,
		Ignore:      ignore,
		Debounce:    debounce,
		MaxFileSize: int64(maxSize),
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+format+"\n", args...)
		},
	})
	if err != nil {
		var ae *watch.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			err = fmt.Errorf("%w (give the key in $%s or --key)", err, watchKeyEnv)
		}
		return 1, err
	}
	return 0, nil
}
