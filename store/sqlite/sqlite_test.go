package sqlite_test

import (
	"testing"

	"github.com/signpost-fhir/signpost/store"
	"github.com/signpost-fhir/signpost/store/sqlite"
	"github.com/signpost-fhir/signpost/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
