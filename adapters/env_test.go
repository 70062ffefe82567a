package adapters_test

import (
	"context"
	"testing"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/auth"
)

// TestEnvFromSelf: a context acts as the instance when its principal is
// the instance's client, as Env.Context makes it; not another client's,
// nor one without a principal.
func TestEnvFromSelf(t *testing.T) {
	self := &auth.Principal{Subject: "adapter:pas-rh8", ClientID: "adapter:pas-rh8"}
	env := adapters.Env{Name: "pas-rh8", Principal: self}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want bool
	}{
		{"the instance's context", env.Context(context.Background()), true},
		{"another client", auth.NewContext(context.Background(), &auth.Principal{Subject: "u", ClientID: "gp-system"}), false},
		{"no principal", context.Background(), false},
	} {
		if got := env.FromSelf(tt.ctx); got != tt.want {
			t.Errorf("%s: FromSelf = %v, want %v", tt.name, got, tt.want)
		}
	}
	if (adapters.Env{}).FromSelf(env.Context(context.Background())) {
		t.Error("an Env without a principal counts a context as its own")
	}
}
