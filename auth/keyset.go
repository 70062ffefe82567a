package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is the oidc.KeySet the Verifier hands go-oidc. It verifies a JWS
// against the issuer's keys, matched by kid, and fetches the JWKS again when a
// token names a kid it does not know (key rotation), at most once per
// minInterval however many such tokens arrive: go-oidc's RemoteKeySet
// refreshes on every unknown kid, which lets anyone make Signpost hammer the
// issuer by sending tokens with made-up kids.
//
// A keySet without a jwksURL holds fixed keys and never fetches.
type keySet struct {
	algs        []jose.SignatureAlgorithm
	jwksURL     string
	client      *http.Client
	minInterval time.Duration // between two fetches
	maxAge      time.Duration // keys older than this are fetched again before use
	now         func() time.Time

	mu        sync.Mutex // held across a fetch, so concurrent misses wait for one fetch
	keys      []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last fetch attempt; fetches are at least minInterval apart
}

// errUnknownKey is the cause when no key of the issuer has the token's kid.
var errUnknownKey = errors.New("signing key not among the issuer's keys")

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, stale := k.current()
	if stale {
		keys = k.refresh(ctx)
	}
	if payload, found, err := verifyWith(jws, keys, kid); found {
		return payload, err
	}
	// Unknown kid: the issuer may have rotated its keys.
	if payload, found, err := verifyWith(jws, k.refresh(ctx), kid); found {
		return payload, err
	}
	return nil, errUnknownKey
}

// current returns the cached keys and whether they are too old to use.
func (k *keySet) current() ([]jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	stale := k.jwksURL != "" && (k.fetchedAt.IsZero() || k.now().Sub(k.fetchedAt) > k.maxAge)
	return k.keys, stale
}

// refresh fetches the key set, unless a fetch was attempted within
// minInterval, and returns the keys it then holds. A failed fetch keeps the
// old keys. Requests that miss while a fetch is in flight wait for it and
// then use its result.
func (k *keySet) refresh(ctx context.Context) []jose.JSONWebKey {
	if k.jwksURL == "" {
		return k.keys
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.triedAt.IsZero() && k.now().Sub(k.triedAt) < k.minInterval {
		return k.keys
	}
	k.triedAt = k.now()
	keys, err := k.fetch(ctx)
	if err != nil {
		return k.keys
	}
	k.keys, k.fetchedAt = keys, k.now()
	return k.keys
}

// fetch GETs the JWKS.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.jwksURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s", k.jwksURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode %s: %w", k.jwksURL, err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil {
			continue // a key type or curve go-jose does not know (RFC 7517 §5: ignore it)
		}
		if key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// verifyWith verifies jws with the keys whose kid matches (every key when the
// token has no kid). found is false when no key matched the kid.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, found bool, err error) {
	for i := range keys {
		key := &keys[i]
		if kid != "" && key.KeyID != kid {
			continue
		}
		found = true
		if key.Algorithm != "" && key.Algorithm != jws.Signatures[0].Header.Algorithm {
			err = errors.New("token alg does not match the key's alg")
			continue
		}
		if p, verr := jws.Verify(key); verr == nil {
			return p, true, nil
		}
		err = errors.New("signature does not verify")
	}
	return nil, found, err
}

// has reports whether the cached keys include kid.
func (k *keySet) has(kid string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range k.keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}
