package watch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClientAnswers(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r) }))
	defer srv.Close()
	c := &Client{Proxy: srv.URL + "/", Key: "sk-secret"}
	ctx := context.Background()

	// A stats answer.
	answer = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != StatsPath || r.URL.Query().Get("id") != "a b" || r.Header.Get("Authorization") != "Bearer sk-secret" {
			t.Errorf("request %s %s %q", r.Method, r.URL, r.Header.Get("Authorization"))
		}
		w.Write([]byte(`{"id":"a b","version":7,"files":100,"bytes":123456,"estimated_tokens":30864,"updated_at":"2025-01-02T03:04:05Z","deltas_applied":6,"snapshots":1}`))
	}
	st, err := c.Stats(ctx, "a b")
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{ID: "a b", Version: 7, Files: 100, Bytes: 123456, EstimatedTokens: 30864,
		UpdatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), DeltasApplied: 6, Snapshots: 1}
	if *st != want {
		t.Errorf("stats = %+v, want %+v", *st, want)
	}

	// A 409 with the current version and a Retry-After.
	answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":{"message":"base_version 3 is not the current version","type":"invalid_request_error","code":"context_version_conflict","current_version":9}}`))
	}
	_, _, err = c.PostDiff(ctx, "x", "diff", 3)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != CodeVersionConflict || ae.CurrentVersion == nil || *ae.CurrentVersion != 9 ||
		ae.RetryAfter != 3*time.Second || ae.Retryable() {
		t.Errorf("409: %#v", err)
	}
	if got := ae.Error(); got != "409 Conflict (context_version_conflict): base_version 3 is not the current version" {
		t.Errorf("Error() = %q", got)
	}

	// A proxy's HTML error page, with the key echoed back.
	answer = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>\n<body>bad gateway for sk-secret</body></html>"))
	}
	_, _, err = c.PostSnapshot(ctx, "x", nil, nil)
	if !errors.As(err, &ae) || ae.Status != 502 || !ae.Retryable() || strings.Contains(err.Error(), "sk-secret") ||
		!strings.Contains(ae.Message, "bad gateway for [redacted]") {
		t.Errorf("502: %v", err)
	}

	// A redirect is not followed.
	answer = func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/v1/context/delta", http.StatusMovedPermanently)
	}
	_, _, err = c.PostSnapshot(ctx, "x", nil, nil)
	if !errors.As(err, &ae) || ae.Status != 301 || !strings.Contains(ae.Message, "redirected to https://elsewhere.example") {
		t.Errorf("redirect: %v", err)
	}

	// 200 but not the gateway's stats.
	answer = func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"ok":true}`)) }
	if _, _, err = c.PostSnapshot(ctx, "x", nil, nil); err == nil {
		t.Error("an answer without a version was accepted")
	}

	// The request bodies.
	var got string
	answer = func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1000)
		n, _ := r.Body.Read(b)
		got = string(b[:n])
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		w.Write([]byte(`{"id":"x","version":1}`))
	}
	if _, _, err := c.PostSnapshot(ctx, "x", nil, nil); err != nil || got != `{"id":"x","snapshot":{}}` {
		t.Errorf("empty snapshot body %q (%v)", got, err)
	}
	base := int64(4)
	if _, _, err := c.PostSnapshot(ctx, "x", map[string]string{"a": "b"}, &base); err != nil || got != `{"id":"x","snapshot":{"a":"b"},"base_version":4}` {
		t.Errorf("snapshot body %q (%v)", got, err)
	}
	if _, n, err := c.PostDiff(ctx, "x", "d", 5); err != nil || got != `{"id":"x","diff":"d","base_version":5}` || n != len(got) {
		t.Errorf("diff body %q, size %d (%v)", got, n, err)
	}
}

func TestClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, _, err := (&Client{Proxy: url}).PostDiff(context.Background(), "x", "d", 1)
	var ne *NetError
	if !errors.As(err, &ne) || !retryable(err) {
		t.Fatalf("err = %#v, want a NetError", err)
	}
	if strings.Contains(err.Error(), "Post ") {
		t.Errorf("the error repeats the request: %q", err)
	}
}

func TestRetryAfter(t *testing.T) {
	if d := retryAfter("7"); d != 7*time.Second {
		t.Errorf("7: %v", d)
	}
	if d := retryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)); d < 50*time.Second || d > time.Minute {
		t.Errorf("date: %v", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Errorf("soon: %v", d)
	}
}
