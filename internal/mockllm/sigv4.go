package mockllm

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// sigMismatch is the message AWS answers a bad signature with.
const sigMismatch = "The request signature we calculated does not match the signature you provided. " +
	"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

// bedrockAuthorized checks a Bedrock request against s.AWSCredentials and
// answers 403 as AWS does when it fails: a Bearer token (a Bedrock API
// key) passes, no Authorization is MissingAuthenticationTokenException,
// a signature that is not the one the mock computes is
// InvalidSignatureException.
func (s *Server) bedrockAuthorized(w http.ResponseWriter, r *http.Request, body []byte) bool {
	auth := r.Header.Get("Authorization")
	if scheme, token, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) != "" {
		return true
	}
	if auth == "" {
		bedrockError(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return false
	}
	if err := VerifySigV4(r, body, *s.AWSCredentials, s.AWSRegion); err != nil {
		bedrockError(w, http.StatusForbidden, "InvalidSignatureException", sigMismatch+" (mock: "+err.Error()+")")
		return false
	}
	return true
}

// VerifySigV4 checks that r carries a valid AWS Signature Version 4
// (Authorization: AWS4-HMAC-SHA256 ...) made with creds for the service
// "bedrock" in region over body, r's body (already read). It signs the
// received request again with the AWS SDK's signer — only the headers
// the signature lists in SignedHeaders, at the X-Amz-Date time, over the
// SHA-256 of body — and returns nil when that gives the Authorization
// header r carries, an error saying what differs otherwise. The request's
// X-Amz-Security-Token must be creds' session token (none without one).
func VerifySigV4(r *http.Request, body []byte, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return errors.New("no AWS4-HMAC-SHA256 Authorization header")
	}
	var credential, signedHeaders string
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signedHeaders = v
		}
	}
	date, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("no valid X-Amz-Date header")
	}
	if want := creds.AccessKeyID + "/" + date.Format("20060102") + "/" + region + "/bedrock/aws4_request"; credential != want {
		return fmt.Errorf("credential %q, want %q", credential, want)
	}
	if r.Header.Get("X-Amz-Security-Token") != creds.SessionToken {
		return errors.New("X-Amz-Security-Token is not the credentials' session token")
	}
	names := strings.Split(signedHeaders, ";")
	if !slices.Contains(names, "host") || !slices.Contains(names, "x-amz-date") {
		return fmt.Errorf("SignedHeaders %q lack host or x-amz-date", signedHeaders)
	}
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	again := &http.Request{Method: r.Method, URL: &u, Host: r.Host, Header: http.Header{}}
	for _, name := range names {
		switch name {
		case "host":
		case "content-length":
			again.ContentLength = int64(len(body))
		default:
			v := r.Header.Values(name)
			if len(v) == 0 {
				return fmt.Errorf("signed header %q is missing", name)
			}
			again.Header[http.CanonicalHeaderKey(name)] = v
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "bedrock", region, date); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(again.Header.Get("Authorization")), []byte(auth)) != 1 {
		return errors.New("signature differs")
	}
	return nil
}
