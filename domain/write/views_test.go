package write

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestViews: a view is decoded once per content (equal bytes from another
// slice share it), other content decodes anew, a failed decode is not
// remembered, and past maxViews the views start afresh.
func TestViews(t *testing.T) {
	type view struct{ Status string }
	calls := 0
	v := NewViews(func(raw []byte) (*view, error) {
		calls++
		var out view
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, err
		}
		return &out, nil
	})
	steps := []struct {
		raw        string
		wantStatus string
		wantErr    bool
		wantCalls  int // decodes so far
	}{
		{raw: `{"Status":"free"}`, wantStatus: "free", wantCalls: 1},
		{raw: `{"Status":"free"}`, wantStatus: "free", wantCalls: 1},
		{raw: `{"Status":"busy"}`, wantStatus: "busy", wantCalls: 2},
		{raw: `{"Status":`, wantErr: true, wantCalls: 3},
		{raw: `{"Status":`, wantErr: true, wantCalls: 4},
		{raw: `{"Status":"free"}`, wantStatus: "free", wantCalls: 4},
	}
	for i, st := range steps {
		got, err := v.Get([]byte(st.raw))
		if (err != nil) != st.wantErr {
			t.Fatalf("step %d: error %v, want error %v", i, err, st.wantErr)
		}
		if err == nil && got.Status != st.wantStatus {
			t.Errorf("step %d: status %q, want %q", i, got.Status, st.wantStatus)
		}
		if calls != st.wantCalls {
			t.Errorf("step %d: %d decodes, want %d", i, calls, st.wantCalls)
		}
	}
	first, _ := v.Get([]byte(`{"Status":"free"}`))
	if again, _ := v.Get([]byte(`{"Status":"free"}`)); again != first {
		t.Errorf("equal bytes gave two views")
	}
	for i := range maxViews {
		if _, err := v.Get(fmt.Appendf(nil, `{"Status":"s%d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.m) > maxViews {
		t.Errorf("%d views kept, want at most %d", len(v.m), maxViews)
	}
	calls = 0
	if _, err := v.Get([]byte(`{"Status":"free"}`)); err != nil || calls != 1 {
		t.Errorf("after the bound: %d decodes (error %v), want the view decoded again", calls, err)
	}
}
