package llmgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/llmgate/caddy-llmgate/keys"
)

// The admin endpoints of client keys:
//
//	GET    /llm/keys          the stored keys (name, hash, limits, created, revoked)
//	POST   /llm/keys          {"name":"alice","daily_usd":5,"monthly_usd":60} creates a key;
//	                          the answer holds the secret, shown this once
//	DELETE /llm/keys/<name>   revokes a key
//
// Keys declared in a Caddyfile (llm_budget key ...) are not listed: they
// live in the config.

// keyRequest is the body of POST /llm/keys.
type keyRequest struct {
	Name       string  `json:"name"`
	DailyUSD   float64 `json:"daily_usd,omitempty"`
	MonthlyUSD float64 `json:"monthly_usd,omitempty"`
}

// createdKey is the answer of POST /llm/keys.
type createdKey struct {
	keys.Key
	// Secret is the key itself, which the gateway does not keep.
	Secret string `json:"key"`
}

func (a *adminAPI) keyStore() (*keys.Store, error) {
	app, err := a.app()
	if err != nil {
		return nil, err
	}
	ks := app.KeyStore()
	if ks == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the llm storage is not open")}
	}
	return ks, nil
}

func (a *adminAPI) keys(w http.ResponseWriter, r *http.Request) error {
	name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/llm/keys"), "/")
	ks, err := a.keyStore()
	if err != nil {
		return err
	}
	now := time.Now()
	var out any
	status := http.StatusOK
	switch {
	case name == "" && r.Method == http.MethodGet:
		out = ks.List()
	case name == "" && r.Method == http.MethodPost:
		var kr keyRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&kr); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the key request: %v (want {\"name\":...,\"daily_usd\":...,\"monthly_usd\":...})", err)}
		}
		secret, k, err := ks.Create(kr.Name, kr.DailyUSD, kr.MonthlyUSD, now)
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, keys.ErrExists) {
				code = http.StatusConflict
			}
			return caddy.APIError{HTTPStatus: code, Err: err}
		}
		out, status = createdKey{Key: k, Secret: secret}, http.StatusCreated
	case name != "" && r.Method == http.MethodDelete:
		k, err := ks.Revoke(name, now)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, keys.ErrNotFound) {
				code = http.StatusNotFound
			}
			return caddy.APIError{HTTPStatus: code, Err: err}
		}
		out = k
	default:
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed,
			Err: errors.New("use GET or POST /llm/keys, or DELETE /llm/keys/<name>")}
	}
	return writeAdminJSON(w, status, out)
}
