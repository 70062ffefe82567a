package validation_test

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkValidate measures validating a typical Slot and Patient (the
// official examples Slot-1 and Patient-example).
func BenchmarkValidate(b *testing.B) {
	v := newValidator(b)
	for _, name := range []string{"Slot-1", "Patient-example"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "examples", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if issues := v.Validate(raw); len(issues) > 0 {
					b.Fatalf("unexpected issues: %v", issues)
				}
			}
		})
	}
}
