package llmgate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(SigV4Transport{})
}

// SigV4Transport is the reverse_proxy transport of providers that take
// AWS Signature Version 4 (Bedrock without an API key): Caddy's HTTP
// transport, signing every request at the last moment, after the proxy
// has set the Host header and the body is final, so what is signed is
// what is sent. Signing uses aws-sdk-go-v2's signer; credentials come
// from the usual AWS chain (environment, shared config and credentials
// files with a profile, SSO, container and instance roles), refreshed
// by the SDK as they expire.
//
// The llm app sets it up for Bedrock providers; it is not meant to be
// configured by hand, but it is an ordinary Caddy module
// (http.reverse_proxy.transport.llm_sigv4) with the fields of the http
// transport plus the ones below.
type SigV4Transport struct {
	reverseproxy.HTTPTransport

	// Region is the AWS region of the endpoint (us-east-1). Default:
	// the region of the AWS configuration (AWS_REGION, the profile).
	Region string `json:"region,omitempty"`

	// Service is the signing name of the service. Default: bedrock.
	Service string `json:"service,omitempty"`

	// Profile is the shared-config profile to take credentials from.
	// Default: AWS_PROFILE, else "default".
	Profile string `json:"profile,omitempty"`

	creds  aws.CredentialsProvider
	signer *v4.Signer
	now    func() time.Time
}

// CaddyModule returns the Caddy module information.
func (SigV4Transport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.transport.llm_sigv4",
		New: func() caddy.Module { return new(SigV4Transport) },
	}
}

// Provision sets up the HTTP transport and the credential chain.
// Missing credentials are not a config error: a request fails with a
// clear error (and falls back to the next provider) until they appear.
func (t *SigV4Transport) Provision(ctx caddy.Context) error {
	if err := t.HTTPTransport.Provision(ctx); err != nil {
		return err
	}
	var opts []func(*config.LoadOptions) error
	if t.Region != "" {
		opts = append(opts, config.WithRegion(t.Region))
	}
	if t.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(t.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if t.Region == "" {
		t.Region = cfg.Region
	}
	if t.Region == "" {
		return errors.New("no AWS region: set region in the provider or AWS_REGION")
	}
	if t.Service == "" {
		t.Service = "bedrock"
	}
	t.creds = cfg.Credentials
	t.signer = v4.NewSigner()
	t.now = time.Now
	return nil
}

// RoundTrip signs req and sends it.
func (t *SigV4Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.sign(req); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.HTTPTransport.RoundTrip(req)
}

// sign adds the SigV4 headers to req. The body is hashed as sent (the
// gateway gives every upstream request a GetBody; a body without one is
// read and replaced).
func (t *SigV4Transport) sign(req *http.Request) error {
	if t.creds == nil {
		return errors.New("AWS signing is not set up")
	}
	body, err := requestBody(req)
	if err != nil {
		return fmt.Errorf("reading the request body to sign it: %w", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	creds, err := t.creds.Retrieve(req.Context())
	if err != nil {
		return fmt.Errorf("no AWS credentials for signing (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an api_key): %w", err)
	}
	// A header from an earlier attempt's signature would be signed over.
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		req.Header.Del(h)
	}
	req.Header.Set("X-Amz-Content-Sha256", hash)
	return t.signer.SignHTTP(req.Context(), creds, req, hash, t.Service, t.Region, t.now())
}

// requestBody returns req's body without consuming it.
func requestBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	b, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return b, nil
}

// Interface guards.
var (
	_ caddy.Provisioner  = (*SigV4Transport)(nil)
	_ http.RoundTripper  = (*SigV4Transport)(nil)
	_ caddy.CleanerUpper = (*SigV4Transport)(nil)
)
