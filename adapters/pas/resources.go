package pas

// The instance's helpers for reading and patching resources' JSON, in one
// place: identifiers by system, optional reads, a slot's schedule.
// Extensions are set with fhir.Object.SetExtensions and references split
// with fhir.SplitReference.

import (
	"context"
	"encoding/json"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// readOrNil reads typ/id, giving nil for one missing or deleted.
func readOrNil(ctx context.Context, rd store.Reader, typ, id string) (*fhir.Resource, error) {
	res, err := rd.Read(ctx, typ, id)
	switch fhir.KindOf(err) {
	case fhir.NotFound, fhir.Gone:
		return nil, nil
	}
	return res, err
}

// identifierOf is the value of the first of ids of system, or "".
func identifierOf(ids []r4.Identifier, system string) string {
	for _, id := range ids {
		if elem.Str(id.System) == system && elem.Str(id.Value) != "" {
			return elem.Str(id.Value)
		}
	}
	return ""
}

// identifierIn is the value of the first identifier of system in a
// resource's JSON, or "" (none, or JSON that cannot be read).
func identifierIn(resourceJSON []byte, system string) string {
	var v struct {
		Identifier []r4.Identifier `json:"identifier"`
	}
	if json.Unmarshal(resourceJSON, &v) != nil {
		return ""
	}
	return identifierOf(v.Identifier, system)
}

// setReplaces marks a new appointment (obj) as replacing Appointment/id
// (booking.ExtReplaces), as a reschedule does; a hold's expiry copied
// from the replaced one is dropped.
func setReplaces(obj *fhir.Object, id string) error {
	if err := obj.SetExtensions(booking.ExtHoldExpires); err != nil {
		return err
	}
	return obj.SetExtensions(booking.ExtReplaces, r4.Extension{Url: booking.ExtReplaces, ValueReference: &r4.Reference{Reference: elem.Opt("Appointment/" + id)}})
}

// slotSchedule is the id of the Schedule of the Slot ref names.
func slotSchedule(ctx context.Context, rd store.Reader, ref string) (string, error) {
	_, id, _ := fhir.SplitReference(ref)
	s, err := rd.Read(ctx, "Slot", id)
	if err != nil {
		return "", err
	}
	var slot struct{ Schedule r4.Reference }
	if err := json.Unmarshal(s.JSON, &slot); err != nil {
		return "", err
	}
	_, sched, _ := fhir.SplitReference(elem.Str(slot.Schedule.Reference))
	return sched, nil
}

// toObject encodes v as a fhir.Object.
//
// encoding/json writes an object compactly, each member once and valid,
// which is what fhir.ParseObject checks a client's resource for at some
// cost: the members are taken off the encoding as they are (fhir.ScanObject)
// and ParseObject is left for what is not an object.
func toObject(v any) (*fhir.Object, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	o, err := fhir.ParseObject([]byte("{}"))
	if err != nil {
		return nil, err
	}
	sc := fhir.ScanObject(b, 0)
	for sc.Next() {
		o.Set(sc.Name(), json.RawMessage(sc.Value()))
	}
	if sc.Err() != nil {
		return fhir.ParseObject(b)
	}
	return o, nil
}
