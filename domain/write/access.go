package write

// What the write path tells the access layer, and asks it: a rule that
// writes a resource as a consequence of another write declares it
// (Consequence), so that the access layer can check that write against the
// caller like any other; and a rule that resolves a reference a client
// gave reads it as that client may see it (ReadAs), so that a resource the
// caller may not read is answered exactly as one that does not exist.

import (
	"context"
	"slices"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/store"
)

// Grant says who may make a consequential write.
type Grant uint8

// The grants a consequence can carry.
const (
	// WithCause: the write is part of the write that causes it, which is
	// being made in the same transaction and is checked itself: whoever
	// may make that write may make this one (the slots a booking claims or
	// a cancellation frees, the referral's status following its Task, the
	// workflow Task created with its referral).
	WithCause Grant = iota + 1
	// ToWritersOf: whoever may update each resource in On may make the
	// write (a referral's Task moved by an operation on the referral).
	ToWritersOf
	// ToReadersOf: whoever may read one of the resources in On may make
	// the write (a referral's Task following an appointment booked against
	// it, by the patient, the call centre, the referrer or the provider).
	ToReadersOf
)

// String names the grant, for messages.
func (g Grant) String() string {
	switch g {
	case WithCause:
		return "with its cause"
	case ToWritersOf:
		return "to writers of"
	case ToReadersOf:
		return "to readers of"
	}
	return "none"
}

// Consequence declares that the write of Type/ID is made because of
// another write or an operation (Of, for messages), and who may make it
// (Grant, measured against On). An empty ID stands for the resource of
// Type that the write creates.
type Consequence struct {
	Type, ID string
	Grant    Grant
	On       []string // "Type/id" references for ToWritersOf and ToReadersOf
	Of       string   // what it follows from, e.g. "Appointment/123" or "$redirect ServiceRequest/9"
}

type consequenceKey struct{}

// AsConsequence returns ctx for a write that is the consequence c. It
// applies only to the write c names: any other write made with ctx (by the
// rules of that write, say) is checked as the caller's own unless it is
// declared in turn.
//
// It is a context value, not a PutOptions field, because the access layer
// (api) reads it with the caller's principal, which travels in the
// context: the domain declares, the access layer decides.
func AsConsequence(ctx context.Context, c Consequence) context.Context {
	return context.WithValue(ctx, consequenceKey{}, c)
}

// ConsequenceOf returns the consequence declared in ctx for the change ch,
// if ctx declares one for it.
func ConsequenceOf(ctx context.Context, ch *Change) (Consequence, bool) {
	c, ok := ctx.Value(consequenceKey{}).(Consequence)
	if !ok || c.Type != ch.Type || (c.ID != ch.ID && (c.ID != "" || ch.Old != nil)) {
		return Consequence{}, false
	}
	c.On = slices.Clone(c.On)
	return c, true
}

// Visibility reports whether the caller in ctx may read typ/id as r holds
// it. The access layer provides it (SetVisibility); without one, everything
// is visible.
type Visibility func(ctx context.Context, r store.Reader, typ, id string) (bool, error)

// SetVisibility sets how ReadAs tells what the caller may read. Call it
// during start-up only.
func (r *Path) SetVisibility(v Visibility) { r.visible = v }

// ReadAs reads typ/id from rd as the caller in ctx may: a resource the
// caller may not read is fhir.NotFound, exactly as one that does not
// exist. Rules use it to resolve the references a client gave (an
// Appointment's basedOn, an operation's patient), so that nothing they
// answer or copy tells the caller about what it cannot read.
func (r *Path) ReadAs(ctx context.Context, rd store.Reader, typ, id string) (*fhir.Resource, error) {
	res, err := rd.Read(ctx, typ, id)
	if err != nil || r.visible == nil {
		return res, err
	}
	ok, err := r.visible(ctx, rd, typ, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "", "%s/%s is not known", typ, id)
	}
	return res, nil
}

// Created reports whether typ/id was created in this transaction (it did
// not exist, or was deleted, before it).
func (t *Tx) Created(typ, id string) bool { return t.created[typ+"/"+id] }
