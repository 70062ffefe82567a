package write

import "sync"

// Views remembers what a rule decoded from the resources it reads, by the
// resources' exact bytes, so that the same JSON is decoded once: every
// booking of a service reads the same Schedule and HealthcareService, and
// decoding them again was most of the booking rules' own work. Equal
// bytes decode alike, so a view can never be stale, whichever version or
// transaction the bytes came from. It is safe for concurrent use. Views
// are shared: callers must not change them.
type Views[T any] struct {
	decode func([]byte) (*T, error)
	mu     sync.Mutex
	m      map[string]*T
}

// maxViews bounds the views one Views keeps; past it, it starts afresh.
const maxViews = 1024

// NewViews returns an empty Views decoding with decode.
func NewViews[T any](decode func([]byte) (*T, error)) *Views[T] {
	return &Views[T]{decode: decode, m: map[string]*T{}}
}

// Get returns the view of raw, decoding it unless an equal raw was decoded
// before. Errors are not remembered.
func (v *Views[T]) Get(raw []byte) (*T, error) {
	v.mu.Lock()
	t, ok := v.m[string(raw)]
	v.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := v.decode(raw)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	if len(v.m) >= maxViews {
		clear(v.m)
	}
	v.m[string(raw)] = t
	v.mu.Unlock()
	return t, nil
}
