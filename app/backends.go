package app

// The store backends built into Signpost: each registers its scheme of
// --store / SIGNPOST_STORE with package store from its init. Add a
// backend here to build it in; store.Open names the schemes built in when
// a URI asks for another.
import (
	_ "github.com/signpost-fhir/signpost/store/mongo"  // mongodb://…, mongodb+srv://…, lungo:, lungo:DIR
	_ "github.com/signpost-fhir/signpost/store/sqlite" // sqlite, sqlite:DIR
)
