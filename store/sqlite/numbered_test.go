package sqlite

import (
	"reflect"
	"testing"
)

// TestNumbered: numbered gives each distinct value one numbered parameter,
// keeps values of different types apart and leaves quoted text alone.
func TestNumbered(t *testing.T) {
	tests := []struct {
		in       frag
		wantSQL  string
		wantArgs []any
	}{
		{frag{"a = ? AND b = ?", []any{int64(1), int64(2)}}, "a = ?1 AND b = ?2", []any{int64(1), int64(2)}},
		{frag{"(x = ? AND y > ?) OR (x = ? AND y > ?)", []any{"s1", int64(5), "s2", int64(5)}},
			"(x = ?1 AND y > ?2) OR (x = ?3 AND y > ?2)", []any{"s1", int64(5), "s2"}},
		{frag{"a = ? AND b = ?", []any{int64(7), 7}}, "a = ?1 AND b = ?2", []any{int64(7), 7}},
		{frag{"a = '?' AND b = ? AND c LIKE ? ESCAPE '\\'", []any{"v", "v"}}, "a = '?' AND b = ?1 AND c LIKE ?1 ESCAPE '\\'", []any{"v"}},
		{frag{"a = ? AND b = ?", []any{[]byte("x"), []byte("x")}}, "a = ?1 AND b = ?2", []any{[]byte("x"), []byte("x")}},
	}
	for _, tt := range tests {
		got := numbered(tt.in)
		if got.sql != tt.wantSQL || !reflect.DeepEqual(got.args, tt.wantArgs) {
			t.Errorf("numbered(%q, %v) = %q, %v; want %q, %v", tt.in.sql, tt.in.args, got.sql, got.args, tt.wantSQL, tt.wantArgs)
		}
	}
}
