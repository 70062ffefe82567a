// Package harden is the API's protection against misuse that needs no
// identity: security headers on every response, CORS for the configured
// browser origins, and a token-bucket rate limit per client.
package harden

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/signpost-fhir/signpost/fhir"
)

// Config configures the security headers and CORS.
type Config struct {
	// CORSOrigins are the browser origins allowed to call the API ("*"
	// for any); none means no CORS headers.
	CORSOrigins []string
	// HSTS sends Strict-Transport-Security (the server speaks TLS).
	HSTS bool
	// AuthPath is where the mounted authorisation server is served, whose
	// pages style themselves inline ("" when there is none).
	AuthPath string
	// CSP, when set, returns the Content-Security-Policy of a path served
	// beside the API (a site's pages), or "" for the API's own.
	CSP func(path string) string
}

// Headers returns the middleware that sets the security headers on every
// response and answers CORS preflight requests from the configured
// origins.
func Headers(cfg Config) gin.HandlerFunc {
	return func(c *gin.Context) { cfg.headers(c) }
}

func (cfg Config) headers(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if csp := cfg.sitePolicy(c.Request.URL.Path); csp != "" {
		h.Set("Content-Security-Policy", csp)
	} else if !strings.HasPrefix(c.Request.URL.Path, cfg.AuthPath+"/") || cfg.AuthPath == "" {
		// The development server's picker page styles itself inline.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	} else {
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	}
	if cfg.HSTS {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	origin := c.GetHeader("Origin")
	if origin == "" || !cfg.corsAllowed(origin) {
		c.Next()
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Location, Content-Location, ETag, Last-Modified, WWW-Authenticate, X-Request-Id, Retry-After")
	if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

func (cfg Config) sitePolicy(path string) string {
	if cfg.CSP == nil {
		return ""
	}
	return cfg.CSP(path)
}

func (cfg Config) corsAllowed(origin string) bool {
	for _, o := range cfg.CORSOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// Limiter is a token bucket per client.
type Limiter struct {
	fail  func(c *gin.Context, err error)
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a limiter allowing rate requests per second per
// client, in bursts of burst (default max(1, 2×rate)); fail answers a
// request over the limit (an OperationOutcome).
func NewLimiter(rate float64, burst int, fail func(c *gin.Context, err error)) *Limiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*rate)))
	}
	return &Limiter{fail: fail, rate: rate, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// take spends one token of key's bucket; when there is none it returns how
// long until there will be.
func (l *Limiter) take(key string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > time.Minute { // forget idle clients
		for k, b := range l.buckets {
			if now.Sub(b.at).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, found := l.buckets[key]
	if !found {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// Allow applies the rate limit to key; when it is exceeded it answers 429
// with Retry-After and stops the request. A nil Limiter allows everything.
func (l *Limiter) Allow(c *gin.Context, key string) bool {
	if l == nil {
		return true
	}
	ok, wait := l.take(key)
	if ok {
		return true
	}
	secs := int(math.Ceil(wait.Seconds()))
	c.Header("Retry-After", strconv.Itoa(max(1, secs)))
	l.fail(c, fhir.Errorf(fhir.TooManyRequests, "throttled", "", "too many requests from this client: retry after %d s", max(1, secs)))
	c.Abort()
	return false
}
