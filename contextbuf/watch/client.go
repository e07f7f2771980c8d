package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// Paths of the gateway's context endpoints, below the proxy's base URL.
const (
	DeltaPath = "/v1/context/delta"
	StatsPath = "/v1/context/stats"
)

// Error codes of the gateway's answers.
const (
	CodeVersionConflict = "context_version_conflict"
	CodeNotApplicable   = "delta_not_applicable"
	// CodeNotFound is the code of a 404 for an unknown context (as
	// opposed to a 404 for a gateway without the endpoint).
	CodeNotFound = "context_not_found"
)

// Stats is the gateway's description of a stored context, as returned by a
// successful delta POST and by the stats endpoint.
type Stats struct {
	ID              string    `json:"id"`
	Version         int64     `json:"version"`
	Files           int       `json:"files"`
	Bytes           int64     `json:"bytes"`
	EstimatedTokens int64     `json:"estimated_tokens"`
	UpdatedAt       time.Time `json:"updated_at"`
	DeltasApplied   int64     `json:"deltas_applied"`
	Snapshots       int64     `json:"snapshots"`
}

// APIError is an answer of the gateway other than 200.
type APIError struct {
	Status         int           // HTTP status code
	Type           string        // error.type, e.g. "invalid_request_error"
	Code           string        // error.code, e.g. CodeVersionConflict
	Message        string        // error.message, or the start of a non-JSON body
	CurrentVersion *int64        // error.current_version, when given
	RetryAfter     time.Duration // the Retry-After header, 0 when absent
}

// Error describes the answer: status, code and message.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Retryable reports whether sending again later may succeed: 408, 425,
// 429 and 5xx answers.
func (e *APIError) Retryable() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// Client talks to the gateway's context endpoints.
type Client struct {
	// Proxy is the gateway's base URL, e.g. https://gateway.example.com
	// or http://localhost:8080 (a path prefix is kept).
	Proxy string
	// Key, when not empty, is sent as "Authorization: Bearer <key>". It
	// never appears in errors.
	Key string
	// HTTP is the client to use; nil means a client with a 2 minute
	// timeout.
	HTTP *http.Client
}

// deltaBody and snapshotBody are the two forms of a delta POST.
type deltaBody struct {
	ID          string `json:"id"`
	Diff        string `json:"diff"`
	BaseVersion *int64 `json:"base_version,omitempty"`
}

type snapshotBody struct {
	ID          string           `json:"id"`
	Snapshot    contextbuf.Files `json:"snapshot"`
	BaseVersion *int64           `json:"base_version,omitempty"`
}

// PostDiff sends a unified diff that applies to version base of the
// context id. It returns the request body's size with the answer.
func (c *Client) PostDiff(ctx context.Context, id, diff string, base int64) (*Stats, int, error) {
	return c.post(ctx, deltaBody{ID: id, Diff: diff, BaseVersion: &base})
}

// PostSnapshot replaces the context id with files. base, when not nil, is
// the version being replaced (the gateway refuses with a 409 when its
// version differs); nil replaces whatever is there.
func (c *Client) PostSnapshot(ctx context.Context, id string, files contextbuf.Files, base *int64) (*Stats, int, error) {
	if files == nil {
		files = contextbuf.Files{}
	}
	return c.post(ctx, snapshotBody{ID: id, Snapshot: files, BaseVersion: base})
}

func (c *Client) post(ctx context.Context, body any) (*Stats, int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(DeltaPath), bytes.NewReader(b))
	if err != nil {
		return nil, len(b), err
	}
	req.Header.Set("Content-Type", "application/json")
	st, err := c.do(req)
	return st, len(b), err
}

// Stats fetches the stats of the context id; an unknown id is an
// *APIError with Status 404.
func (c *Client) Stats(ctx context.Context, id string) (*Stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(StatsPath)+"?id="+url.QueryEscape(id), nil)
	if err != nil {
		return nil, err
	}
	return c.do(req)
}

func (c *Client) endpoint(p string) string {
	return strings.TrimRight(c.Proxy, "/") + p
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTPClient
}

// defaultHTTPClient does not follow redirects: a POST would become a
// GET, and the key would be dropped on the way; the redirect is reported
// instead.
var defaultHTTPClient = &http.Client{
	Timeout: 2 * time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (c *Client) do(req *http.Request) (*Stats, error) {
	req.Header.Set("Accept", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, c.scrub(transportError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, c.scrub(transportError(err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.scrubAPI(parseAPIError(resp, body))
	}
	st, err := decodeStats(body)
	if err != nil {
		return nil, &APIError{Status: resp.StatusCode, Message: "the answer is not the gateway's context stats: " + snippet(body)}
	}
	return st, nil
}

// decodeStats reads a stats answer; it must at least carry a version.
// A missing or odd updated_at is tolerated.
func decodeStats(body []byte) (*Stats, error) {
	var raw struct {
		Stats
		Version   *int64 `json:"version"`
		UpdatedAt string `json:"updated_at"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	if raw.Version == nil {
		return nil, errors.New("no version")
	}
	st := raw.Stats
	st.Version = *raw.Version
	st.UpdatedAt, _ = time.Parse(time.RFC3339Nano, raw.UpdatedAt)
	return &st, nil
}

// parseAPIError turns a non-200 answer into an *APIError.
func parseAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	var env struct {
		Error struct {
			Message        string `json:"message"`
			Type           string `json:"type"`
			Code           any    `json:"code"`
			CurrentVersion *int64 `json:"current_version"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && (env.Error.Message != "" || env.Error.Code != nil) {
		e.Message = oneLine(env.Error.Message, 300)
		e.Type = env.Error.Type
		switch v := env.Error.Code.(type) {
		case string:
			e.Code = v
		case float64:
			e.Code = strconv.FormatFloat(v, 'f', -1, 64)
		}
		e.CurrentVersion = env.Error.CurrentVersion
		return e
	}
	e.Message = snippet(body)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			e.Message = "redirected to " + redactURL(loc)
		}
	}
	return e
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// snippet is the start of a non-JSON body, on one line.
func snippet(b []byte) string {
	return oneLine(string(b), 200)
}

// oneLine collapses white space and cuts s to about max bytes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// NetError is a failure to talk to the gateway at all (refused
// connection, timeout, name resolution...). It is always worth retrying.
type NetError struct{ Err error }

// Error returns the underlying error's text without the request URL.
func (e *NetError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *NetError) Unwrap() error { return e.Err }

func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return &NetError{Err: fmt.Errorf("timeout: %w", ue.Err)}
		}
		return &NetError{Err: ue.Err}
	}
	return &NetError{Err: err}
}

// scrub makes sure the key never shows in an error (a server or a proxy
// could echo it back).
func (c *Client) scrub(err error) error {
	if err == nil || c.Key == "" || !strings.Contains(err.Error(), c.Key) {
		return err
	}
	var ne *NetError
	if errors.As(err, &ne) {
		return &NetError{Err: errors.New(redact(ne.Err.Error(), c.Key))}
	}
	return errors.New(redact(err.Error(), c.Key))
}

func (c *Client) scrubAPI(e *APIError) error {
	if c.Key != "" {
		e.Message = redact(e.Message, c.Key)
		e.Code = redact(e.Code, c.Key)
		e.Type = redact(e.Type, c.Key)
	}
	return e
}

// redact replaces every occurrence of secret in s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
