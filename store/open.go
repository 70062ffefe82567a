package store

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/signpost-fhir/signpost/fhir/search"
)

// Config says which store to open: what an Opener receives.
type Config struct {
	// URI names the backend by its scheme and says where its data is:
	// "sqlite" (the database in Data), "sqlite:DIR" (the database in
	// directory DIR), "mongodb://…" or "mongodb+srv://…". It may carry
	// credentials: show it only through Redact.
	URI string
	// Data is the server's data directory (keys and local state; the
	// embedded database unless URI says otherwise).
	Data string
	// Search is the registry of search parameters, for what a backend
	// reads from it (the parameter pairs to index together:
	// search.Registry.Pairs); nil gives search.DefaultPairs.
	Search *search.Registry
}

// Opener opens (creating if needed) the store cfg names, for one scheme.
type Opener func(ctx context.Context, cfg Config) (Store, error)

// openers are the registered backends by scheme. Backends register from
// their package's init, and the program decides which are built in by
// importing them (app/backends.go), as database/sql drivers do.
var openers = struct {
	sync.RWMutex
	m map[string]Opener
}{m: map[string]Opener{}}

// Register makes a backend available under scheme (the part of a store URI
// before the first colon, e.g. "sqlite" or "mongodb+srv"). It panics if
// scheme is empty or already registered: both are programming errors.
func Register(scheme string, open Opener) {
	openers.Lock()
	defer openers.Unlock()
	if scheme == "" || open == nil {
		panic("store: Register with an empty scheme or a nil opener")
	}
	if _, dup := openers.m[scheme]; dup {
		panic("store: backend " + scheme + " registered twice")
	}
	openers.m[scheme] = open
}

// Schemes returns the schemes of the backends built in, sorted.
func Schemes() []string {
	openers.RLock()
	defer openers.RUnlock()
	out := make([]string, 0, len(openers.m))
	for s := range openers.m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Scheme returns the scheme of a store URI: what comes before its first
// colon ("sqlite" for "sqlite:/var/db", "mongodb+srv" for
// "mongodb+srv://…"), or the whole URI when it has none ("sqlite").
func Scheme(uri string) string {
	s, _, _ := strings.Cut(uri, ":")
	return s
}

// Open opens the store cfg.URI names through the backend registered for
// its scheme. Its errors show the URI only as Redact gives it, and never
// the credentials it carries, even where the backend's own error repeats
// them.
func Open(ctx context.Context, cfg Config) (Store, error) {
	scheme := Scheme(cfg.URI)
	openers.RLock()
	open := openers.m[scheme]
	openers.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("store %s: no backend for scheme %q is built in (built in: %s)",
			Redact(cfg.URI), scheme, strings.Join(Schemes(), ", "))
	}
	st, err := open(ctx, cfg)
	if err != nil {
		return nil, &openError{uri: cfg.URI, err: err}
	}
	return st, nil
}

// openError is a backend's failure to open a store: its message names the
// store and hides the URI's credentials wherever they appear.
type openError struct {
	uri string
	err error
}

func (e *openError) Error() string {
	return "store " + Redact(e.uri) + ": " + redactIn(e.err.Error(), e.uri)
}

func (e *openError) Unwrap() error { return e.err }

// minSecret is the length from which redactIn replaces a credential.
const minSecret = 3

// redacted replaces credentials in what Redact shows.
const redacted = "xxxxx"

// Redact returns uri fit for logs and error messages: the user and
// password of its authority ("mongodb://user:pw@host" gives
// "mongodb://xxxxx@host") and the values of its query parameters (a
// MongoDB URI may carry a key file's password there) replaced by xxxxx.
// A URI without them is returned unchanged.
func Redact(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return uri
	}
	head, query, hasQuery := strings.Cut(rest, "?")
	head, frag, hasFrag := strings.Cut(head, "#")
	if at := strings.LastIndex(head, "@"); at >= 0 {
		head = redacted + head[at:]
	}
	out := scheme + "://" + head
	if hasFrag {
		out += "#" + frag
	}
	if hasQuery {
		query, _, _ = strings.Cut(query, "#")
		var kv []string
		for _, p := range strings.Split(query, "&") {
			k, _, _ := strings.Cut(p, "=")
			kv = append(kv, k+"="+redacted)
		}
		out += "?" + strings.Join(kv, "&")
	}
	return out
}

// redactIn replaces in msg every credential uri carries: its user
// information (raw and unescaped, whole and each part) and its query
// values, each of at least minSecret characters (replacing a shorter one
// would garble the message more than it protects).
func redactIn(msg, uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return msg
	}
	head, query, _ := strings.Cut(rest, "?")
	head, _, _ = strings.Cut(head, "#")
	var secrets []string
	if at := strings.LastIndex(head, "@"); at >= 0 {
		info := head[:at]
		user, pw, _ := strings.Cut(info, ":")
		secrets = append(secrets, info, user, pw)
	}
	for _, p := range strings.Split(query, "&") {
		_, v, _ := strings.Cut(p, "=")
		secrets = append(secrets, v)
	}
	var all []string
	for _, s := range secrets {
		all = append(all, s)
		if u, err := url.PathUnescape(s); err == nil {
			all = append(all, u)
		}
		if u, err := url.QueryUnescape(s); err == nil {
			all = append(all, u)
		}
	}
	// Longest first, so a password is not left half-replaced by its user.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	for _, s := range all {
		if len(s) >= minSecret {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	return msg
}
