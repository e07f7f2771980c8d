package mockllm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/tidwall/gjson"
)

// post sends body to the mock at path with headers and returns the
// answer with its body read.
func post(t *testing.T, url, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func start(t *testing.T, s *Server) *httptest.Server {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

const (
	geminiText  = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	geminiTools = `{"contents":[{"role":"user","parts":[{"text":"weather?"}]}],"tools":[{"functionDeclarations":[{"name":"get_weather","parameters":{"type":"object"}},{"name":"other"}]}]}`
	bedrockText = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	bedrockTool = `{"messages":[{"role":"user","content":[{"text":"weather?"}]}],"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{"type":"object"}}}},{"toolSpec":{"name":"other"}}]}}`
)

func TestGeminiJSON(t *testing.T) {
	m := &Server{}
	srv := start(t, m)
	resp, b := post(t, srv.URL, "/v1beta/models/gemini-2.5-flash:generateContent", geminiText, map[string]string{"x-goog-api-key": "gk-1"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	g := gjson.ParseBytes(b)
	c := g.Get("candidates.0")
	if c.Get("content.role").Str != "model" || c.Get("content.parts.0.text").Str != Text || c.Get("finishReason").Str != "STOP" ||
		!c.Get("index").Exists() || g.Get("modelVersion").Str != "gemini-2.5-flash" || g.Get("responseId").Str == "" {
		t.Errorf("answer: %s", b)
	}
	u := g.Get("usageMetadata")
	if u.Get("promptTokenCount").Int() != InputTokens || u.Get("cachedContentTokenCount").Int() != CachedTokens ||
		u.Get("candidatesTokenCount").Int() != OutputTokens || u.Get("totalTokenCount").Int() != InputTokens+OutputTokens {
		t.Errorf("usage: %s", u.Raw)
	}

	_, b = post(t, srv.URL, "/v1/models/gemini-2.5-flash:generateContent", geminiTools, nil)
	c = gjson.GetBytes(b, "candidates.0")
	fc := c.Get("content.parts.0.functionCall")
	if fc.Get("name").Str != "get_weather" || fc.Get("args").Raw != toolArgs || fc.Get("id").Exists() ||
		c.Get("finishReason").Str != "STOP" || len(c.Get("content.parts").Array()) != 1 {
		t.Errorf("tool answer: %s", b)
	}

	reqs := m.Requests()
	if len(reqs) != 2 || reqs[0].Path != "/v1beta/models/gemini-2.5-flash:generateContent" || reqs[0].Header.Get("X-Goog-Api-Key") != "gk-1" ||
		string(reqs[0].Body) != geminiText || reqs[1].Path != "/v1/models/gemini-2.5-flash:generateContent" {
		t.Errorf("recorded: %+v", reqs)
	}
}

// sseEvents splits a Gemini SSE body on its CRLF blank lines and returns
// the data of each event.
func sseEvents(t *testing.T, b []byte) []gjson.Result {
	t.Helper()
	s := string(b)
	if !strings.HasSuffix(s, "\r\n\r\n") {
		t.Fatalf("stream does not end with CRLF CRLF: %q", s)
	}
	var out []gjson.Result
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\r\n\r\n"), "\r\n\r\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !gjson.Valid(data) {
			t.Fatalf("bad event %q", ev)
		}
		out = append(out, gjson.Parse(data))
	}
	return out
}

func TestGeminiStream(t *testing.T) {
	srv := start(t, &Server{})
	resp, b := post(t, srv.URL, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiText, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if bytes.Contains(b, []byte("[DONE]")) {
		t.Error("Gemini streams have no [DONE]")
	}
	evs := sseEvents(t, b)
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4: %s", len(evs), b)
	}
	var text strings.Builder
	prev := int64(-1)
	for i, ev := range evs {
		text.WriteString(ev.Get("candidates.0.content.parts.0.text").Str)
		u := ev.Get("usageMetadata")
		if u.Get("promptTokenCount").Int() != InputTokens || u.Get("candidatesTokenCount").Int() < prev ||
			ev.Get("modelVersion").Str != "gemini-2.5-flash" || ev.Get("candidates.0.content.role").Str != "model" {
			t.Errorf("event %d: %s", i, ev.Raw)
		}
		prev = u.Get("candidatesTokenCount").Int()
		if last := i == len(evs)-1; ev.Get("candidates.0.finishReason").Exists() != last {
			t.Errorf("event %d finishReason: %s", i, ev.Raw)
		}
	}
	last := evs[len(evs)-1]
	if text.String() != Text || last.Get("candidates.0.finishReason").Str != "STOP" ||
		last.Get("usageMetadata.candidatesTokenCount").Int() != OutputTokens ||
		last.Get("usageMetadata.totalTokenCount").Int() != InputTokens+OutputTokens {
		t.Errorf("text %q, last %s", text.String(), last.Raw)
	}

	_, b = post(t, srv.URL, "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiTools, nil)
	evs = sseEvents(t, b)
	if len(evs) != 1 {
		t.Fatalf("tool stream: %s", b)
	}
	fc := evs[0].Get("candidates.0.content.parts.0.functionCall")
	if fc.Get("name").Str != "get_weather" || fc.Get("args").Raw != toolArgs || evs[0].Get("candidates.0.finishReason").Str != "STOP" ||
		evs[0].Get("usageMetadata.candidatesTokenCount").Int() != OutputTokens {
		t.Errorf("tool stream: %s", b)
	}

	// Without alt=sse the stream is one JSON array.
	resp, b = post(t, srv.URL, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiText, nil)
	arr := gjson.ParseBytes(b)
	if resp.StatusCode != 200 || !arr.IsArray() || len(arr.Array()) != 4 || arr.Get("3.candidates.0.finishReason").Str != "STOP" ||
		arr.Get("#.candidates.0.content.parts.0.text").Raw != `["Hell","o fr","om m","ock"]` {
		t.Errorf("array stream: %s", b)
	}
}

func TestGeminiErrors(t *testing.T) {
	srv := start(t, &Server{})
	for _, c := range []struct {
		status int
		grpc   string
	}{{429, "RESOURCE_EXHAUSTED"}, {503, "UNAVAILABLE"}, {400, "INVALID_ARGUMENT"}, {500, "INTERNAL"}, {404, "NOT_FOUND"}} {
		for _, method := range []string{":generateContent", ":streamGenerateContent?alt=sse"} {
			resp, b := post(t, srv.URL, "/v1beta/models/mock-status-"+strconv.Itoa(c.status)+method, geminiText, nil)
			e := gjson.GetBytes(b, "error")
			if resp.StatusCode != c.status || e.Get("code").Int() != int64(c.status) || e.Get("status").Str != c.grpc || e.Get("message").Str == "" {
				t.Errorf("%d%s: %d %s", c.status, method, resp.StatusCode, b)
			}
			retry := c.status == 429 || c.status == 503
			if (resp.Header.Get("Retry-After") == "1") != retry {
				t.Errorf("%d: Retry-After %q", c.status, resp.Header.Get("Retry-After"))
			}
			info := e.Get(`details.#(@type=="type.googleapis.com/google.rpc.RetryInfo").retryDelay`)
			if (info.Str == "1s") != (c.status == 429) {
				t.Errorf("%d: details %s", c.status, e.Get("details").Raw)
			}
		}
	}
	resp, b := post(t, srv.URL, "/v1beta/models/gemini-2.5-flash:generateContent", "{not json", nil)
	if resp.StatusCode != 400 || gjson.GetBytes(b, "error.status").Str != "INVALID_ARGUMENT" {
		t.Errorf("invalid JSON: %d %s", resp.StatusCode, b)
	}
	if resp, _ := post(t, srv.URL, "/v1beta/models/gemini-2.5-flash:countTokens", geminiText, nil); resp.StatusCode != 404 {
		t.Errorf("unknown method: %d", resp.StatusCode)
	}
}

func TestGeminiBreak(t *testing.T) {
	srv := start(t, &Server{})
	_, b := post(t, srv.URL, "/v1beta/models/mock-break:streamGenerateContent?alt=sse", geminiText, nil)
	evs := sseEvents(t, b)
	if len(evs) == 0 || len(evs) >= 4 {
		t.Fatalf("%d events: %s", len(evs), b)
	}
	for _, ev := range evs {
		if ev.Get("candidates.0.finishReason").Exists() {
			t.Errorf("broken stream has a finishReason: %s", ev.Raw)
		}
	}
	_, b = post(t, srv.URL, "/v1beta/models/mock-break:streamGenerateContent", geminiText, nil)
	if gjson.ValidBytes(b) || !bytes.HasPrefix(b, []byte("[")) {
		t.Errorf("broken array stream should be an unclosed array: %s", b)
	}
}

func TestBedrockJSON(t *testing.T) {
	m := &Server{}
	srv := start(t, m)
	resp, b := post(t, srv.URL, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", bedrockText, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	g := gjson.ParseBytes(b)
	if g.Get("output.message.role").Str != "assistant" || g.Get("output.message.content.0.text").Str != Text ||
		g.Get("stopReason").Str != "end_turn" || g.Get("metrics.latencyMs").Int() != 1 {
		t.Errorf("answer: %s", b)
	}
	u := g.Get("usage")
	if u.Get("inputTokens").Int() != InputTokens-CachedTokens || u.Get("outputTokens").Int() != OutputTokens ||
		u.Get("totalTokens").Int() != InputTokens+OutputTokens || u.Get("cacheReadInputTokens").Int() != CachedTokens ||
		!u.Get("cacheWriteInputTokens").Exists() {
		t.Errorf("usage: %s", u.Raw)
	}

	_, b = post(t, srv.URL, "/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fus.m/converse", bedrockTool, nil)
	g = gjson.ParseBytes(b)
	tu := g.Get("output.message.content.0.toolUse")
	if tu.Get("toolUseId").Str != "tooluse_mock1" || tu.Get("name").Str != "get_weather" || tu.Get("input").Raw != toolArgs ||
		g.Get("stopReason").Str != "tool_use" {
		t.Errorf("tool answer: %s", b)
	}
	reqs := m.Requests()
	if len(reqs) != 2 || reqs[0].Path != "/model/anthropic.claude-3-haiku-20240307-v1:0/converse" ||
		reqs[1].Path != "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.m/converse" || string(reqs[1].Body) != bedrockTool {
		t.Errorf("recorded: %+v", reqs)
	}
	// An ARN whose '/' is not escaped is no model id.
	if resp, _ := post(t, srv.URL, "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.m/converse", bedrockText, nil); resp.StatusCode != 404 {
		t.Errorf("unescaped ARN: %d", resp.StatusCode)
	}
}

type frame struct {
	typ     string
	payload gjson.Result
}

// frames decodes a ConverseStream body with the AWS eventstream decoder.
func frames(t *testing.T, b []byte) []frame {
	t.Helper()
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(b)
	var out []frame
	for r.Len() > 0 {
		msg, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		if mt := msg.Headers.Get(":message-type"); mt == nil || mt.String() != "event" {
			t.Fatalf("frame %d :message-type %v", len(out), mt)
		}
		if ct := msg.Headers.Get(":content-type"); ct == nil || ct.String() != "application/json" {
			t.Fatalf("frame %d :content-type %v", len(out), ct)
		}
		et := msg.Headers.Get(":event-type")
		if et == nil || !gjson.ValidBytes(msg.Payload) {
			t.Fatalf("frame %d: %v %q", len(out), et, msg.Payload)
		}
		out = append(out, frame{et.String(), gjson.ParseBytes(msg.Payload)})
	}
	return out
}

func types(fs []frame) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.typ)
	}
	return strings.Join(s, ",")
}

func TestBedrockStream(t *testing.T) {
	srv := start(t, &Server{})
	resp, b := post(t, srv.URL, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", bedrockText, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	fs := frames(t, b)
	if got, want := types(fs), "messageStart,contentBlockDelta,contentBlockDelta,contentBlockDelta,contentBlockDelta,contentBlockStop,messageStop,metadata"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	var text strings.Builder
	for _, f := range fs[1:5] {
		if f.payload.Get("contentBlockIndex").Int() != 0 {
			t.Errorf("delta: %s", f.payload.Raw)
		}
		text.WriteString(f.payload.Get("delta.text").Str)
	}
	md := fs[7].payload
	if fs[0].payload.Get("role").Str != "assistant" || text.String() != Text || fs[6].payload.Get("stopReason").Str != "end_turn" ||
		md.Get("usage.inputTokens").Int() != InputTokens-CachedTokens || md.Get("usage.outputTokens").Int() != OutputTokens ||
		md.Get("usage.cacheReadInputTokens").Int() != CachedTokens || md.Get("usage.totalTokens").Int() != InputTokens+OutputTokens ||
		!md.Get("metrics.latencyMs").Exists() {
		t.Errorf("text %q, frames %+v", text.String(), fs)
	}

	_, b = post(t, srv.URL, "/model/m/converse-stream", bedrockTool, nil)
	fs = frames(t, b)
	if got, want := types(fs), "messageStart,contentBlockStart,contentBlockDelta,contentBlockDelta,contentBlockStop,messageStop,metadata"; got != want {
		t.Fatalf("tool events %s, want %s", got, want)
	}
	start := fs[1].payload.Get("start.toolUse")
	input := fs[2].payload.Get("delta.toolUse.input").Str + fs[3].payload.Get("delta.toolUse.input").Str
	if start.Get("toolUseId").Str != "tooluse_mock1" || start.Get("name").Str != "get_weather" || input != toolArgs ||
		fs[5].payload.Get("stopReason").Str != "tool_use" {
		t.Errorf("tool stream: start %s, input %q, stop %s", start.Raw, input, fs[5].payload.Raw)
	}

	_, b = post(t, srv.URL, "/model/mock-break/converse-stream", bedrockText, nil)
	fs = frames(t, b)
	if got := types(fs); strings.Contains(got, "messageStop") || strings.Contains(got, "metadata") || !strings.HasPrefix(got, "messageStart,") {
		t.Errorf("broken stream: %s", got)
	}
}

func TestBedrockErrors(t *testing.T) {
	srv := start(t, &Server{})
	for _, c := range []struct {
		status int
		typ    string
	}{{429, "ThrottlingException"}, {503, "ServiceUnavailableException"}, {400, "ValidationException"},
		{500, "InternalServerException"}, {424, "ModelErrorException"}, {403, "AccessDeniedException"}, {404, "ResourceNotFoundException"}} {
		for _, op := range []string{"converse", "converse-stream"} {
			resp, b := post(t, srv.URL, "/model/mock-status-"+strconv.Itoa(c.status)+"/"+op, bedrockText, nil)
			if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-Errortype") != c.typ || gjson.GetBytes(b, "message").Str == "" ||
				resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%d %s: %d %s %s", c.status, op, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
			}
			if retry := c.status == 429 || c.status == 503; (resp.Header.Get("Retry-After") == "1") != retry {
				t.Errorf("%d: Retry-After %q", c.status, resp.Header.Get("Retry-After"))
			}
		}
	}
	resp, _ := post(t, srv.URL, "/model/m/converse", "{not json", nil)
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-Errortype") != "ValidationException" {
		t.Errorf("invalid JSON: %d", resp.StatusCode)
	}
}

var testCreds = aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

// signed is a Converse request signed as the gateway's transport signs
// it: body hash in X-Amz-Content-Sha256, then SigV4 for bedrock.
func signed(t *testing.T, url, body string, creds aws.Credentials, region string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "bedrock", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestBedrockSigV4(t *testing.T) {
	creds := testCreds
	m := &Server{AWSCredentials: &creds, AWSRegion: "eu-west-3"}
	srv := start(t, m)

	resp, b := do(t, signed(t, srv.URL, bedrockText, testCreds, "eu-west-3"))
	if resp.StatusCode != 200 || gjson.GetBytes(b, "output.message.content.0.text").Str != Text {
		t.Fatalf("signed request: %d %s", resp.StatusCode, b)
	}

	rejected := func(name string, req *http.Request, typ string) {
		t.Helper()
		resp, b := do(t, req)
		if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-Errortype") != typ || gjson.GetBytes(b, "message").Str == "" {
			t.Errorf("%s: %d %s %s", name, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), b)
		}
	}
	// The body changed after signing (Content-Length and hash header kept).
	req := signed(t, srv.URL, bedrockText, testCreds, "eu-west-3")
	tampered := strings.Replace(bedrockText, `"hi"`, `"ho"`, 1)
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader(tampered)), int64(len(tampered))
	rejected("tampered body", req, "InvalidSignatureException")
	wrong := testCreds
	wrong.SecretAccessKey = "not-the-secret"
	rejected("wrong secret", signed(t, srv.URL, bedrockText, wrong, "eu-west-3"), "InvalidSignatureException")
	wrong = testCreds
	wrong.AccessKeyID = "AKIDOTHER"
	rejected("wrong key id", signed(t, srv.URL, bedrockText, wrong, "eu-west-3"), "InvalidSignatureException")
	rejected("wrong region", signed(t, srv.URL, bedrockText, testCreds, "us-east-1"), "InvalidSignatureException")
	req = signed(t, srv.URL, bedrockText, testCreds, "eu-west-3")
	req.Header.Set("Content-Type", "text/plain") // a signed header changed
	rejected("changed header", req, "InvalidSignatureException")
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/model/m/converse", strings.NewReader(bedrockText))
	rejected("no auth", req, "MissingAuthenticationTokenException")

	// A Bedrock API key passes and is recorded.
	resp, _ = post(t, srv.URL, "/model/m/converse-stream", bedrockText, map[string]string{"Authorization": "Bearer bedrock-api-key-1"})
	if resp.StatusCode != 200 {
		t.Errorf("bearer: %d", resp.StatusCode)
	}
	reqs := m.Requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer bedrock-api-key-1" {
		t.Errorf("recorded Authorization %q", got)
	}

	// Other dialects are not checked.
	if resp, _ := post(t, srv.URL, "/v1beta/models/g:generateContent", geminiText, nil); resp.StatusCode != 200 {
		t.Errorf("gemini with AWS credentials set: %d", resp.StatusCode)
	}
}

// TestVerifySigV4 calls the helper directly, with a session token.
func TestVerifySigV4(t *testing.T) {
	creds := testCreds
	creds.SessionToken = "session-token"
	var got []error
	srv := start(t, &Server{})
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, VerifySigV4(r, body, creds, "eu-west-3"))
		got = append(got, VerifySigV4(r, append(body, ' '), creds, "eu-west-3"))
		got = append(got, VerifySigV4(r, body, testCreds, "eu-west-3")) // without the session token the request carries
	})
	do(t, signed(t, srv.URL, bedrockText, creds, "eu-west-3"))
	if len(got) != 3 || got[0] != nil || got[1] == nil || got[2] == nil {
		t.Fatalf("VerifySigV4: %v", got)
	}
	r := httptest.NewRequest(http.MethodPost, "/model/m/converse", nil)
	if err := VerifySigV4(r, nil, creds, "eu-west-3"); err == nil {
		t.Error("unsigned request verified")
	}
}

// TestStreamError checks the model mock-stream-error: a 200 stream with
// the dialect's preamble, no text, its in-stream error and no end.
func TestStreamError(t *testing.T) {
	srv := start(t, &Server{})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, path, body, ctype string
		preamble, errEvent      []string
		end                     []string
	}{
		{"openai", "/v1/chat/completions", `{"model":"mock-stream-error","stream":true,` + msgs + `}`, "text/event-stream",
			[]string{`data: {"choices":[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-mock","model":"mock-stream-error","object":"chat.completion.chunk"}` + "\n\n"},
			[]string{`data: {"error":{"message":"mock: overloaded","type":"server_error","param":null,"code":null}}` + "\n\n"},
			[]string{"[DONE]", "finish_reason\":\"stop"}},
		{"anthropic", "/v1/messages", `{"model":"mock-stream-error","stream":true,"max_tokens":16,` + msgs + `}`, "text/event-stream",
			[]string{"event: message_start\ndata: {", `"usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"input_tokens":8,"output_tokens":1}`,
				"event: ping\ndata: {\"type\":\"ping\"}\n\n"},
			[]string{"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"},
			[]string{"message_stop", "message_delta", "content_block"}},
		{"responses", "/v1/responses", `{"model":"mock-stream-error","stream":true,"input":"hi"}`, "text/event-stream",
			[]string{"event: response.created\ndata: {", "event: response.in_progress\ndata: {", `"sequence_number":1`},
			[]string{"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock: overloaded\",\"param\":null,\"sequence_number\":2}\n\n"},
			[]string{"response.completed", "response.output_text", "response.output_item"}},
		{"ollama", "/api/chat", `{"model":"mock-stream-error",` + msgs + `}`, "application/x-ndjson",
			nil,
			[]string{`{"error":"mock: overloaded"}` + "\n"},
			[]string{`"done":true`}},
		{"gemini sse", "/v1beta/models/mock-stream-error:streamGenerateContent?alt=sse", geminiText, "text/event-stream",
			nil,
			[]string{`data: {"error":{"code":503,"message":"mock: overloaded","status":"UNAVAILABLE"}}` + "\r\n\r\n"},
			[]string{"finishReason", "candidates"}},
		{"gemini array", "/v1beta/models/mock-stream-error:streamGenerateContent", geminiText, "application/json",
			nil,
			[]string{`[{"error":{"code":503,"message":"mock: overloaded","status":"UNAVAILABLE"}}`},
			[]string{"finishReason", "candidates"}},
	} {
		resp, b := post(t, srv.URL, c.path, c.body, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: status %d %s: %s", c.name, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			continue
		}
		s := string(b)
		for _, p := range c.preamble {
			if !strings.Contains(s, p) {
				t.Errorf("%s: no preamble %q in %q", c.name, p, s)
			}
		}
		for _, e := range c.errEvent {
			if !strings.HasSuffix(s, e) && !(c.name == "gemini array" && strings.Contains(s, e)) {
				t.Errorf("%s: stream does not end with the error %q: %q", c.name, e, s)
			}
		}
		for _, e := range c.end {
			if strings.Contains(s, e) {
				t.Errorf("%s: end or content %q in %q", c.name, e, s)
			}
		}
		if strings.Contains(s, "Hello") || strings.Contains(s, "output_text") || strings.Contains(s, "text_delta") {
			t.Errorf("%s: text in %q", c.name, s)
		}
	}

	// Without alt=sse the stream is a whole JSON array holding the error.
	_, b := post(t, srv.URL, "/v1beta/models/mock-stream-error:streamGenerateContent", geminiText, nil)
	if arr := gjson.ParseBytes(b); !gjson.ValidBytes(b) || len(arr.Array()) != 1 || arr.Get("0.error.code").Int() != 503 {
		t.Errorf("gemini array: %s", b)
	}
	// The Anthropic preamble is exactly message_start, ping, error.
	_, b = post(t, srv.URL, "/v1/messages", `{"model":"mock-stream-error","stream":true,"max_tokens":16,`+msgs+`}`, nil)
	var events []string
	for _, line := range strings.Split(string(b), "\n") {
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
		}
	}
	if got := strings.Join(events, ","); got != "message_start,ping,error" {
		t.Errorf("anthropic events %s", got)
	}
	if !strings.Contains(string(b), `"model":"mock-stream-error"`) {
		t.Errorf("anthropic message_start: %s", b)
	}
	// Responses: created and in_progress as usual, then the error.
	_, b = post(t, srv.URL, "/v1/responses", `{"model":"mock-stream-error","stream":true,"input":"hi"}`, nil)
	events = nil
	for _, line := range strings.Split(string(b), "\n") {
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			events = append(events, ev)
		}
	}
	if got := strings.Join(events, ","); got != "response.created,response.in_progress,error" {
		t.Errorf("responses events %s", got)
	}
}

func TestBedrockStreamError(t *testing.T) {
	srv := start(t, &Server{})
	resp, b := post(t, srv.URL, "/model/mock-stream-error/converse-stream", bedrockText, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	if bytes.Contains(b, []byte("Hello")) {
		t.Errorf("text in a failing stream: %q", b)
	}
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(b)
	var msgs []eventstream.Message
	for r.Len() > 0 {
		msg, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("frame %d: %v", len(msgs), err)
		}
		msg.Payload = append([]byte(nil), msg.Payload...)
		msgs = append(msgs, msg)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d frames, want messageStart and the exception", len(msgs))
	}
	header := func(m eventstream.Message, name string) string {
		if v := m.Headers.Get(name); v != nil {
			return v.String()
		}
		return ""
	}
	// The first frame is messageStart as usual.
	if header(msgs[0], ":message-type") != "event" || header(msgs[0], ":event-type") != "messageStart" ||
		gjson.GetBytes(msgs[0].Payload, "role").Str != "assistant" {
		t.Errorf("first frame: %+v %s", msgs[0].Headers, msgs[0].Payload)
	}
	e := msgs[1]
	if header(e, ":message-type") != "exception" || header(e, ":exception-type") != "serviceUnavailableException" ||
		header(e, ":content-type") != "application/json" || e.Headers.Get(":event-type") != nil {
		t.Errorf("exception headers: %+v", e.Headers)
	}
	if string(msgs[1].Payload) != `{"message":"mock: overloaded"}` {
		t.Errorf("exception payload %q", msgs[1].Payload)
	}
}

// TestStreamErrorUnstreamed checks that mock-stream-error answers an
// unstreamed request with 529 (Anthropic) or 503 (others), without
// Retry-After.
func TestStreamErrorUnstreamed(t *testing.T) {
	srv := start(t, &Server{})
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, path, body string
		status           int
		check            string
	}{
		{"anthropic", "/v1/messages", `{"model":"mock-stream-error","max_tokens":16,` + msgs + `}`, 529, `error.message`},
		{"openai", "/v1/chat/completions", `{"model":"mock-stream-error",` + msgs + `}`, 503, `error.message`},
		{"gemini", "/v1beta/models/mock-stream-error:generateContent", geminiText, 503, `error.message`},
		{"bedrock", "/model/mock-stream-error/converse", bedrockText, 503, `message`},
	} {
		resp, b := post(t, srv.URL, c.path, c.body, nil)
		if resp.StatusCode != c.status || resp.Header.Get("Retry-After") != "" || resp.Header.Get("Content-Type") != "application/json" ||
			gjson.GetBytes(b, c.check).Str != "mock: status "+strconv.Itoa(c.status) {
			t.Errorf("%s: %d Retry-After %q: %s", c.name, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
}
