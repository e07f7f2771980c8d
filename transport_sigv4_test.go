package llmgate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/caddyserver/caddy/v2"
)

// TestSigV4Transport: a request through the transport arrives signed
// for the configured region and service with the environment's
// credentials, and the signature is the one AWS would compute from
// what arrived (checked by signing the received request again).
func TestSigV4Transport(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_SESSION_TOKEN", "session-token")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	var problem string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		switch {
		case err != nil:
			problem = "no X-Amz-Date"
		case !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+date.Format("20060102")+"/eu-west-3/bedrock/aws4_request"):
			problem = "credential scope: " + auth
		case r.Header.Get("X-Amz-Security-Token") != "session-token":
			problem = "no session token"
		default:
			// Sign what arrived again: the same signature means AWS
			// would accept it.
			again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), strings.NewReader(string(body)))
			// Only the headers the signature names count (the client's
			// transport adds some after signing, as AWS allows).
			_, signed, _ := strings.Cut(auth, "SignedHeaders=")
			signed, _, _ = strings.Cut(signed, ",")
			for _, k := range strings.Split(signed, ";") {
				if k != "host" {
					again.Header[http.CanonicalHeaderKey(k)] = r.Header.Values(k)
				}
			}
			again.Host = r.Host
			creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "session-token"}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, r.Header.Get("X-Amz-Content-Sha256"), "bedrock", "eu-west-3", date); err != nil {
				problem = err.Error()
			} else if got, want := auth, again.Header.Get("Authorization"); got != want {
				problem = "signature differs:\n" + got + "\n" + want
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	tr := &SigV4Transport{Region: "eu-west-3"}
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer tr.Cleanup()
	for i := 0; i < 2; i++ { // a retry of the same request is signed afresh
		body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if problem != "" {
			t.Fatal(problem)
		}
	}
}

// TestSigV4TransportNoCredentials: without credentials the request
// fails before it leaves, saying what to set.
func TestSigV4TransportNoCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	tr := &SigV4Transport{Region: "us-east-1"}
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/model/m/converse", strings.NewReader("{}"))
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no AWS credentials") {
		t.Fatalf("err = %v", err)
	}
}
