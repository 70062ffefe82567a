package referral

import (
	"context"
	"fmt"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// RaiseSlotIssue defers the referral ref ("ServiceRequest/id") to service
// ("HealthcareService/id") as an appointment slot issue, inside tx, as
// $defer with the reason "no slots" does: its Task moves to slot-issue,
// owned by the service, so the referral is on that provider's slot-issues
// worklist (the provider contacts the patient and books), with why as its
// reason and a Provenance naming who raised it. It is for the domain's
// callers that find a booking cannot stand: an adapter whose system of
// record refused one (adapters/pas). A referral already on the worklist
// is left as it is; one whose state cannot move to slot-issue (accepted,
// cancelled…) gives 422 ILLEGAL_TRANSITION. It returns the Task.
//
// Like a raise through $defer, it is open to whoever may read the
// referral (the Task follows as a consequence granted to its readers).
func (s *Service) RaiseSlotIssue(ctx context.Context, tx *write.Tx, ref, service, why string) (*fhir.Resource, error) {
	sr, err := readRef(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	task, tv, err := s.referralTaskView(ctx, tx, sr.Reference())
	if err != nil {
		return nil, err
	}
	cur := tv.state()
	if cur == SlotIssue {
		return task, nil
	}
	if !CanMove(cur, SlotIssue) {
		return nil, fhir.Errorf(fhir.Unprocessable, "business-rule", "Task.businessStatus",
			"referral %s is %s: it cannot be moved to %s", sr.Reference(), cur, SlotIssue).WithDetails("ILLEGAL_TRANSITION")
	}
	moved := write.AsConsequence(ctx, write.Consequence{Type: "Task", ID: task.ID, Grant: write.ToReadersOf,
		On: []string{sr.Reference()}, Of: "slot issue " + sr.Reference()})
	out, err := s.moveTask(moved, tx, task, SlotIssue, why, func(obj *fhir.Object) {
		obj.Set("owner", elem.Ref(service))
	})
	if err != nil {
		return nil, fmt.Errorf("raising a slot issue on %s: %w", sr.Reference(), err)
	}
	return out, nil
}
