package api

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

// harden sets the security headers on every response and answers CORS
// preflight requests from the configured origins.
func (s *Server) harden(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(c.Request.URL.Path, s.cfg.Security.AuthPath+"/") || s.cfg.Security.AuthPath == "" {
		// The development server's picker page styles itself inline.
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	} else {
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	}
	if s.cfg.Security.HSTS {
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	}
	origin := c.GetHeader("Origin")
	if origin == "" || !s.corsAllowed(origin) {
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

func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.cfg.Security.CORSOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// exemptFromNegotiation lists paths that answer in their own format
// whatever Accept says: the SMART configuration (always JSON) and the
// development authorisation server.
func (s *Server) exemptFromNegotiation(path string) bool {
	// Binary serves its native content; operations may answer other formats
	// (a report as CSV) and check _format themselves.
	if path == smartPath || strings.HasPrefix(path, "/fhir/Binary") || strings.Contains(path, "/$") {
		return true
	}
	a := s.cfg.Security.AuthPath
	return s.cfg.Security.AuthServer != nil && (path == a || strings.HasPrefix(path, a+"/"))
}

// rateLimiter is a token bucket per client.
type rateLimiter struct {
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

func newRateLimiter(rate float64, burst int) *rateLimiter {
	if burst <= 0 {
		burst = max(1, int(math.Ceil(2*rate)))
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// take spends one token of key's bucket; when there is none it returns how
// long until there will be.
func (l *rateLimiter) take(key string) (ok bool, wait time.Duration) {
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

// allow applies the rate limit to key; when it is exceeded it answers 429
// with Retry-After and stops the request.
func (s *Server) allow(c *gin.Context, key string) bool {
	if s.limiter == nil {
		return true
	}
	ok, wait := s.limiter.take(key)
	if ok {
		return true
	}
	secs := int(math.Ceil(wait.Seconds()))
	c.Header("Retry-After", strconv.Itoa(max(1, secs)))
	s.failNow(c, fhir.Errorf(fhir.TooManyRequests, "throttled", "", "too many requests from this client: retry after %d s", max(1, secs)))
	return false
}
