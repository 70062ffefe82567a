package adapters_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/operation"
)

// echo is an adapter kind whose instances offer $echo, answering their
// own name.
type echo struct{ name string }

func (e *echo) Start(context.Context) error { return nil }
func (e *echo) Stop(context.Context) error  { return nil }
func (e *echo) Status(context.Context) adapters.Status {
	return adapters.Status{State: adapters.StateUp}
}
func (e *echo) Operations() []*operation.Operation {
	return []*operation.Operation{{Name: "echo", Roles: []string{"provider"}, Handle: func(context.Context, *operation.Request) (*operation.Result, error) {
		return &operation.Result{Body: []byte(e.name)}, nil
	}}}
}

func init() {
	adapters.Register("echo-test", func(env adapters.Env, _ json.RawMessage) (adapters.Adapter, error) { return &echo{name: env.Name}, nil })
}

// TestOperationsRouted: an operation two instances offer is offered once,
// and each invocation reaches the instance its adapter input names; without
// one, or with an unknown one, it is a 400.
func TestOperationsRouted(t *testing.T) {
	inst := func(name string) adapters.Instance {
		return adapters.Instance{Name: name, Kind: "echo-test", Principal: adapters.PrincipalConfig{Role: "provider", Organization: "RH8"}}
	}
	set, err := adapters.Build(&adapters.File{Adapters: []adapters.Instance{inst("one"), inst("two")}}, adapters.Env{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []*operation.Operation // the instances' (the operator view's are the Set's own)
	for _, op := range set.Operations() {
		if op.Name == "echo" {
			ops = append(ops, op)
		}
	}
	if len(ops) != 1 || len(ops[0].Roles) != 1 {
		t.Fatalf("operations %+v", ops)
	}
	for _, c := range []struct{ adapter, want string }{{"one", "one"}, {"two", "two"}, {"", ""}, {"three", ""}} {
		q := map[string][]string{}
		if c.adapter != "" {
			q["adapter"] = []string{c.adapter}
		}
		res, err := ops[0].Handle(context.Background(), &operation.Request{Params: operation.FromQuery(q)})
		switch {
		case c.want == "" && fhir.KindOf(err) != fhir.Invalid:
			t.Errorf("adapter=%q: %v, want a 400", c.adapter, err)
		case c.want != "" && (err != nil || string(res.Body) != c.want):
			t.Errorf("adapter=%q: %v %v, want %s", c.adapter, res, err, c.want)
		}
	}
}
