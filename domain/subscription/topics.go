package subscription

import (
	"encoding/json"
	"slices"

	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
)

// TopicBase is where Signpost publishes its SubscriptionTopics: a topic's
// canonical URL is TopicBase + its id, and it is served read-only at
// /fhir/SubscriptionTopic/{id}.
const TopicBase = conformance.Canonical + "/SubscriptionTopic/"

// Topic is a SubscriptionTopic Signpost detects: its canonical URL, the
// type of its focus resource and its trigger, a test of one write of that
// type (old is the version before the transaction, nil when the resource
// was created; new the version the transaction leaves).
type Topic struct {
	URL      string
	Resource string
	Trigger  func(old, new []byte) bool
}

// Topics are the topics Signpost publishes, by canonical URL. Each is
// described for clients by conformance/signpost/SubscriptionTopic-{id}.json,
// whose url and resourceTrigger.resource it must match (a test checks).
var Topics = map[string]Topic{
	TopicBase + "appointment-booked":      {TopicBase + "appointment-booked", "Appointment", appointmentBooked},
	TopicBase + "appointment-cancelled":   {TopicBase + "appointment-cancelled", "Appointment", appointmentCancelled},
	TopicBase + "appointment-rescheduled": {TopicBase + "appointment-rescheduled", "Appointment", appointmentRescheduled},
	TopicBase + "slot-freed":              {TopicBase + "slot-freed", "Slot", slotFreed},
	TopicBase + "referral-state-changed":  {TopicBase + "referral-state-changed", "Task", referralStateChanged},
}

// appointmentView is what the appointment topics read of an Appointment.
type appointmentView struct {
	Status    string                       `json:"status"`
	Start     string                       `json:"start"`
	End       string                       `json:"end"`
	Slot      []struct{ Reference string } `json:"slot"`
	Extension []struct {
		URL string `json:"url"`
	} `json:"extension"`
}

func readAppointment(b []byte) *appointmentView {
	if b == nil {
		return nil
	}
	var a appointmentView
	if json.Unmarshal(b, &a) != nil {
		return nil
	}
	return &a
}

// replaces reports whether the appointment replaces another (it was made
// by $reschedule, or by a client rescheduling the same way).
func (a *appointmentView) replaces() bool {
	return slices.ContainsFunc(a.Extension, func(e struct {
		URL string `json:"url"`
	}) bool {
		return e.URL == booking.ExtReplaces
	})
}

func (a *appointmentView) slots() []string {
	var out []string
	for _, s := range a.Slot {
		out = append(out, s.Reference)
	}
	return out
}

// appointmentBooked: an Appointment becomes booked (created booked, or
// moved to booked from proposed, pending or waitlist: a hold or a
// PAS-confirmed booking confirmed) and replaces no other appointment.
func appointmentBooked(old, new []byte) bool {
	o, n := readAppointment(old), readAppointment(new)
	return n != nil && n.Status == "booked" && (o == nil || o.Status != "booked") && !n.replaces()
}

// appointmentCancelled: an Appointment becomes cancelled.
func appointmentCancelled(old, new []byte) bool {
	o, n := readAppointment(old), readAppointment(new)
	return n != nil && n.Status == "cancelled" && o != nil && o.Status != "cancelled"
}

// appointmentRescheduled: an Appointment that replaces another becomes
// booked ($reschedule), or a booked Appointment stays booked with another
// start, end or slots (amended in place).
func appointmentRescheduled(old, new []byte) bool {
	o, n := readAppointment(old), readAppointment(new)
	if n == nil || n.Status != "booked" {
		return false
	}
	if o == nil || o.Status != "booked" {
		return n.replaces()
	}
	return o.Start != n.Start || o.End != n.End || !slices.Equal(o.slots(), n.slots())
}

// slotFreed: a Slot that was busy (busy, busy-tentative or
// busy-unavailable) becomes free: a cancellation, a released hold or a
// reschedule gave it back.
func slotFreed(old, new []byte) bool {
	var o, n struct {
		Status string `json:"status"`
	}
	if old == nil || new == nil || json.Unmarshal(old, &o) != nil || json.Unmarshal(new, &n) != nil {
		return false
	}
	return n.Status == "free" && o.Status != "free"
}

// referralState returns the referral state a workflow Task carries (its
// businessStatus code in referral.StateSystem), "" for any other Task.
func referralState(b []byte) string {
	var t struct {
		BusinessStatus struct {
			Coding []struct{ System, Code string } `json:"coding"`
		} `json:"businessStatus"`
	}
	if b == nil || json.Unmarshal(b, &t) != nil {
		return ""
	}
	for _, c := range t.BusinessStatus.Coding {
		if c.System == referral.StateSystem {
			return c.Code
		}
	}
	return ""
}

// referralStateChanged: a referral's workflow Task gets a referral state
// (created with its referral) or moves to another.
func referralStateChanged(old, new []byte) bool {
	n := referralState(new)
	return n != "" && n != referralState(old)
}
