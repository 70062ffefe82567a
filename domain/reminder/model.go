package reminder

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
)

// The parts of the resources reminders read.
type (
	reference struct {
		Reference string `json:"reference,omitempty"`
		Display   string `json:"display,omitempty"`
	}
	coding struct {
		System  string `json:"system,omitempty"`
		Code    string `json:"code,omitempty"`
		Display string `json:"display,omitempty"`
	}
	concept struct {
		Coding []coding `json:"coding,omitempty"`
		Text   string   `json:"text,omitempty"`
	}
	period struct {
		Start string `json:"start,omitempty"`
		End   string `json:"end,omitempty"`
	}
	appointment struct {
		Status      string      `json:"status"`
		Start       string      `json:"start"`
		Slot        []reference `json:"slot"`
		Participant []struct {
			Actor *reference `json:"actor"`
		} `json:"participant"`
	}
	communication struct {
		Status       string      `json:"status"`
		StatusReason *concept    `json:"statusReason"`
		About        []reference `json:"about"`
		Recipient    []reference `json:"recipient"`
		Payload      []struct {
			ContentString string `json:"contentString"`
		} `json:"payload"`
	}
)

// decode reads a resource's JSON into a T.
func decode[T any](b []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fhir.Errorf(fhir.Other, "exception", "", "reading a stored resource: %v", err)
	}
	return &v, nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// start returns the appointment's start.
func (a *appointment) start() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, a.Start)
	return t, err == nil && a.Start != ""
}

// patient returns the reference of the appointment's first Patient
// participant ("" if none).
func (a *appointment) patient() string {
	for _, p := range a.Participant {
		if p.Actor != nil {
			if t, _, ok := fhir.SplitReference(p.Actor.Reference); ok && t == "Patient" {
				return p.Actor.Reference
			}
		}
	}
	return ""
}

// actors returns the references of the participants' actors.
func (a *appointment) actors() []string {
	var out []string
	for _, p := range a.Participant {
		if p.Actor != nil && p.Actor.Reference != "" {
			out = append(out, p.Actor.Reference)
		}
	}
	return out
}

// notDoneReason is why a reminder was not sent.
type notDoneReason struct {
	system, code, text string
}

// The reasons a reminder is not sent.
var (
	reasonOptedOut  = notDoneReason{NotDoneSystem, "patient-objection", "the patient opted out of reminders by this channel"}
	reasonNoContact = notDoneReason{NotDoneSystem, "recipient-unavailable", "the patient has no contact point for any reminder channel"}
	reasonFailed    = notDoneReason{NotDoneSystem, "system-error", "the channel did not take the reminder"}
	reasonCancelled = notDoneReason{ReasonSystem, "appointment-cancelled", "the appointment was cancelled"}
	reasonMoved     = notDoneReason{ReasonSystem, "appointment-moved", "the appointment was moved to another time"}
	reasonPast      = notDoneReason{ReasonSystem, "appointment-past", "the appointment has started"}
)

// newComm is a reminder Communication being made.
type newComm struct{ m map[string]any }

// newCommunication returns the reminder with identifier key about
// Appointment/id for patient, with text, in preparation.
func newCommunication(key, id, patient, text string) *newComm {
	return &newComm{m: map[string]any{
		"resourceType": "Communication",
		"identifier":   []any{map[string]any{"system": IdentifierSystem, "value": key}},
		"status":       "preparation",
		"category":     []any{map[string]any{"coding": []any{map[string]any{"system": CategorySystem, "code": "reminder"}}}},
		"subject":      map[string]any{"reference": patient},
		"about":        []any{map[string]any{"reference": "Appointment/" + id}},
		"recipient":    []any{map[string]any{"reference": patient}},
		"sender":       map[string]any{"display": "Signpost appointment reminders"},
		"payload":      []any{map[string]any{"contentString": text}},
	}}
}

// medium sets the channel.
func (c *newComm) medium(ch Channel) { c.m["medium"] = []any{mediumOf(ch)} }

// mediumOf is the CodeableConcept of a channel.
func mediumOf(ch Channel) map[string]any {
	codings := []any{map[string]any{"system": ChannelSystem, "code": string(ch)}}
	switch ch {
	case Email:
		codings = append(codings, map[string]any{"system": ParticipationModeSystem, "code": "EMAILWRIT", "display": "email"})
	case Webhook:
		codings = append(codings, map[string]any{"system": ParticipationModeSystem, "code": "ONLINEWRIT", "display": "online written"})
	}
	return map[string]any{"coding": codings, "text": map[Channel]string{Email: "e-mail", SMS: "SMS", Webhook: "webhook"}[ch]}
}

// notDone makes the reminder not-done for reason.
func (c *newComm) notDone(r notDoneReason) {
	c.m["status"] = "not-done"
	c.m["statusReason"] = reasonConcept(r)
}

func reasonConcept(r notDoneReason) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": r.system, "code": r.code}}, "text": r.text}
}

// object returns the Communication to write.
func (c *newComm) object() *fhir.Object {
	b, _ := json.Marshal(c.m)
	obj, err := fhir.ParseObject(b)
	if err != nil {
		panic(err) // built from maps: always valid JSON
	}
	return obj
}

// failedToSend reports whether c is not-done because its channel did not
// take it (reasonFailed): an operator's replay of its dead letter sends
// it again.
func (c *communication) failedToSend() bool {
	if c.Status != "not-done" || c.StatusReason == nil {
		return false
	}
	for _, cd := range c.StatusReason.Coding {
		if cd.System == reasonFailed.system && cd.Code == reasonFailed.code {
			return true
		}
	}
	return false
}

// setNotDone makes a stored reminder not-done for reason.
func setNotDone(obj *fhir.Object, r notDoneReason) {
	obj.Set("status", "not-done")
	obj.Set("statusReason", reasonConcept(r))
}

// isReminder reports whether a Communication's JSON is one of Signpost's
// reminders (has an identifier of IdentifierSystem).
func isReminder(b []byte) bool {
	return bytes.Contains(b, []byte(IdentifierSystem)) && reminderKey(b) != ""
}

// reminderKey returns the identifier value of a reminder's JSON ("" if it
// has none).
func reminderKey(b []byte) string {
	var v struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	for _, id := range v.Identifier {
		if id.System == IdentifierSystem {
			return id.Value
		}
	}
	return ""
}

// parseKey splits a reminder key into appointment id and start.
func parseKey(key string) (id string, start time.Time, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, parts[1])
	return parts[0], t, err == nil
}

// place says where the appointment is: its Location participant's name
// and address, else its HealthcareService's name, else those its first
// slot's schedule names as actors.
func (s *Service) place(ctx context.Context, tx *write.Tx, a *appointment) (string, error) {
	actors := a.actors()
	if len(a.Slot) > 0 {
		if _, sid, ok := fhir.SplitReference(a.Slot[0].Reference); ok {
			if slot, err := tx.Read(ctx, "Slot", sid); err == nil {
				var sl struct{ Schedule reference }
				if json.Unmarshal(slot.JSON, &sl) == nil {
					if _, scid, ok := fhir.SplitReference(sl.Schedule.Reference); ok {
						if sc, err := tx.Read(ctx, "Schedule", scid); err == nil {
							var v struct{ Actor []reference }
							if json.Unmarshal(sc.JSON, &v) == nil {
								for _, r := range v.Actor {
									actors = append(actors, r.Reference)
								}
							}
						}
					}
				}
			}
		}
	}
	var service, location string
	for _, ref := range actors {
		typ, id, ok := fhir.SplitReference(ref)
		if !ok || (typ != "Location" && typ != "HealthcareService") {
			continue
		}
		if (typ == "Location" && location != "") || (typ == "HealthcareService" && service != "") {
			continue
		}
		r, err := tx.Read(ctx, typ, id)
		if err != nil {
			continue // gone or unknown: the text does without
		}
		var v struct {
			Name    string `json:"name"`
			Address *struct {
				Line       []string `json:"line"`
				City       string   `json:"city"`
				PostalCode string   `json:"postalCode"`
			} `json:"address"`
		}
		if json.Unmarshal(r.JSON, &v) != nil {
			continue
		}
		if typ == "HealthcareService" {
			service = v.Name
			continue
		}
		parts := []string{v.Name}
		if v.Address != nil {
			parts = append(parts, v.Address.Line...)
			parts = append(parts, v.Address.City, v.Address.PostalCode)
		}
		location = joinNonEmpty(parts)
	}
	return joinNonEmpty([]string{service, location}), nil
}

// joinNonEmpty joins the non-empty parts with ", ".
func joinNonEmpty(parts []string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}
