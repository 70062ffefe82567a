package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
	"github.com/signpost-fhir/signpost/store"
)

// Booking guidance and feedback.
//
// A HealthcareService that needs questions answered before it can be
// booked names its Questionnaire with the extension BookingQuestionnaire
// (valueCanonical, the Questionnaire's url). Booking an appointment for a
// referral with such a service is refused (422, BOOKING_QUESTIONNAIRE_REQUIRED)
// until a completed QuestionnaireResponse to that Questionnaire is basedOn
// the referral. The rule is a repo rule on Appointment, so it holds for
// $hold, $book, $reschedule, a plain POST or PUT and transaction bundles
// alike.
//
// A Questionnaire with the extension ExperienceExtension (valueBoolean
// true) is a patient-experience questionnaire: a response basedOn a
// referral is taken only after one of its appointments has taken place
// (fulfilled), and $patient-experience reports the answers by service.
const (
	BookingQuestionnaire = Base + "/StructureDefinition/booking-questionnaire"
	ExperienceExtension  = Base + "/StructureDefinition/experience"
)

// answered lists the QuestionnaireResponse statuses that count as answered.
var answered = []string{"completed", "amended"}

// guidanceRule is the Appointment rule: a booking for a referral whose
// service requires a booking questionnaire needs the answers first.
func (s *Service) guidanceRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var a, old struct {
		Status      string         `json:"status"`
		BasedOn     []r4.Reference `json:"basedOn"`
		Slot        []r4.Reference `json:"slot"`
		Participant []struct {
			Actor r4.Reference `json:"actor"`
		} `json:"participant"`
	}
	if err := decode(c.New.Bytes(), &a, "Appointment"); err != nil {
		return err
	}
	if c.Old != nil {
		_ = json.Unmarshal(c.Old.JSON, &old)
	}
	booking := func(st string) bool { return st == "pending" || st == "booked" }
	if !booking(a.Status) || booking(old.Status) {
		return nil // not becoming a booking (a change to a booking is not one)
	}
	var referrals []string
	for _, b := range a.BasedOn {
		if t, _, ok := fhir.SplitReference(elem.Str(b.Reference)); ok && t == "ServiceRequest" {
			referrals = append(referrals, elem.Str(b.Reference))
		}
	}
	if len(referrals) == 0 {
		return nil
	}
	// The services booked: participants, and the actors of the slots'
	// schedules.
	services := map[string]bool{}
	for _, p := range a.Participant {
		if t, _, ok := fhir.SplitReference(elem.Str(p.Actor.Reference)); ok && t == "HealthcareService" {
			services[elem.Str(p.Actor.Reference)] = true
		}
	}
	for _, sl := range a.Slot {
		slot, err := readRef(ctx, tx, elem.Str(sl.Reference))
		if err != nil {
			continue // the booking rules report unknown slots
		}
		var sv struct {
			Schedule r4.Reference `json:"schedule"`
		}
		_ = json.Unmarshal(slot.JSON, &sv)
		sched, err := readRef(ctx, tx, elem.Str(sv.Schedule.Reference))
		if err != nil {
			continue
		}
		var sc struct {
			Actor []r4.Reference `json:"actor"`
		}
		_ = json.Unmarshal(sched.JSON, &sc)
		for _, act := range sc.Actor {
			if t, _, ok := fhir.SplitReference(elem.Str(act.Reference)); ok && t == "HealthcareService" {
				services[elem.Str(act.Reference)] = true
			}
		}
	}
	names := make([]string, 0, len(services))
	for svc := range services {
		names = append(names, svc)
	}
	sort.Strings(names)
	for _, svc := range names {
		hs, err := readRef(ctx, tx, svc)
		if err != nil {
			continue
		}
		var v serviceView
		if err := decode(hs.JSON, &v, "HealthcareService"); err != nil {
			return err
		}
		for _, e := range findExtRaw(hs.JSON, BookingQuestionnaire) {
			for _, ref := range referrals {
				ok, err := s.hasAnswers(ctx, tx, ref, e)
				if err != nil {
					return err
				}
				if !ok {
					return fhir.Errorf(fhir.Unprocessable, "business-rule", "Appointment.basedOn",
						"%s (%s) asks for its booking questions to be answered first: no completed QuestionnaireResponse to %s is basedOn %s",
						v.Name, svc, e, ref).WithDetails("BOOKING_QUESTIONNAIRE_REQUIRED")
				}
			}
		}
	}
	return nil
}

// findExtRaw returns the valueCanonical (or valueUri) of the top-level
// extensions of url in a resource's JSON.
func findExtRaw(raw []byte, url string) []string {
	var r struct {
		Extension []struct {
			URL            string `json:"url"`
			ValueCanonical string `json:"valueCanonical"`
			ValueURI       string `json:"valueUri"`
		} `json:"extension"`
	}
	_ = json.Unmarshal(raw, &r)
	var out []string
	for _, e := range r.Extension {
		if e.URL != url {
			continue
		}
		if v := e.ValueCanonical + e.ValueURI; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// hasAnswers reports whether a completed response to the questionnaire
// canonical is basedOn the referral ref.
func (s *Service) hasAnswers(ctx context.Context, tx store.Reader, ref, canonical string) (bool, error) {
	qrs, err := find(ctx, tx, s.reg, "QuestionnaireResponse", "based-on="+ref+"&status="+strings.Join(answered, ","))
	if err != nil {
		return false, err
	}
	want, _, _ := strings.Cut(canonical, "|")
	for _, qr := range qrs {
		var v struct {
			Questionnaire string `json:"questionnaire"`
		}
		_ = json.Unmarshal(qr.JSON, &v)
		got, _, _ := strings.Cut(v.Questionnaire, "|")
		if got == want {
			return true, nil
		}
		if t, _, ok := fhir.SplitReference(got); ok && t == "Questionnaire" && !strings.Contains(got, "://") {
			if q, err := readRef(ctx, tx, got); err == nil && questionnaireURL(q.JSON) == want {
				return true, nil
			}
		}
	}
	return false, nil
}

func questionnaireURL(raw []byte) string {
	var q struct {
		URL string `json:"url"`
	}
	_ = json.Unmarshal(raw, &q)
	u, _, _ := strings.Cut(q.URL, "|")
	return u
}

// questionnaire finds the Questionnaire a response names: by id
// ("Questionnaire/x") or by canonical url.
func (s *Service) questionnaire(ctx context.Context, tx store.Reader, ref string) (*fhir.Resource, error) {
	u, version, _ := strings.Cut(ref, "|")
	if t, _, ok := fhir.SplitReference(u); ok && t == "Questionnaire" && !strings.Contains(u, "://") {
		return readRef(ctx, tx, u)
	}
	q := "url=" + u
	if version != "" {
		q += "&version=" + version
	}
	found, err := find(ctx, tx, s.reg, "Questionnaire", q)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fhir.Errorf(fhir.NotFound, "not-found", "QuestionnaireResponse.questionnaire", "%s does not exist", ref)
	}
	return found[0], nil
}

// isExperience reports whether a Questionnaire is a patient-experience one.
func isExperience(raw []byte) bool {
	var q struct {
		Extension []r4.Extension `json:"extension"`
	}
	_ = json.Unmarshal(raw, &q)
	for _, e := range elem.Extensions(q.Extension, ExperienceExtension) {
		if e.ValueBoolean != nil && *e.ValueBoolean {
			return true
		}
	}
	return false
}

// fulfilledAppointment returns the service of the referral's appointment
// that took place ("" and false when none has).
func (s *Service) fulfilledAppointment(ctx context.Context, tx store.Reader, ref string) (string, bool, error) {
	appts, err := find(ctx, tx, s.reg, "Appointment", "based-on="+ref+"&status=fulfilled")
	if err != nil || len(appts) == 0 {
		return "", false, err
	}
	var a appointmentView
	_ = json.Unmarshal(appts[0].JSON, &a)
	for _, p := range a.Participant {
		if t, _, ok := fhir.SplitReference(p.Actor.Reference); ok && t == "HealthcareService" {
			return p.Actor.Reference, true, nil
		}
	}
	return "", true, nil
}

// qrItem is a QuestionnaireResponse item.
type qrItem struct {
	LinkID string     `json:"linkId"`
	Answer []qrAnswer `json:"answer"`
	Item   []qrItem   `json:"item"`
}

type qrAnswer struct {
	ValueInteger *float64 `json:"valueInteger"`
	ValueDecimal *float64 `json:"valueDecimal"`
	ValueCoding  *struct {
		Code string `json:"code"`
	} `json:"valueCoding"`
	Item []qrItem `json:"item"`
}

// number reads a numeric answer: an integer, a decimal, or a coding whose
// code is a number (a Likert scale).
func (a qrAnswer) number() (float64, bool) {
	switch {
	case a.ValueInteger != nil:
		return *a.ValueInteger, true
	case a.ValueDecimal != nil:
		return *a.ValueDecimal, true
	case a.ValueCoding != nil:
		f, err := strconv.ParseFloat(a.ValueCoding.Code, 64)
		return f, err == nil
	}
	return 0, false
}

// flatten lists the items that carry answers, nested ones included.
func flatten(items []qrItem) []qrItem {
	var out []qrItem
	for _, it := range items {
		if len(it.Answer) > 0 {
			out = append(out, it)
		}
		out = append(out, flatten(it.Item)...)
		for _, a := range it.Answer {
			out = append(out, flatten(a.Item)...)
		}
	}
	return out
}

// itemTexts maps a Questionnaire's linkIds to their texts.
func itemTexts(raw []byte) map[string]string {
	type item struct {
		LinkID string `json:"linkId"`
		Text   string `json:"text"`
		Item   []item `json:"item"`
	}
	var q struct {
		Item []item `json:"item"`
	}
	_ = json.Unmarshal(raw, &q)
	out := map[string]string{}
	var walk func([]item)
	walk = func(items []item) {
		for _, it := range items {
			out[it.LinkID] = it.Text
			walk(it.Item)
		}
	}
	walk(q.Item)
	return out
}

// experienceCheck refuses patient-experience feedback on a referral before
// any of its appointments has taken place.
func (s *Service) experienceCheck(ctx context.Context, tx store.Reader, questionnaire string, referrals []string) error {
	if questionnaire == "" || len(referrals) == 0 {
		return nil
	}
	q, err := s.questionnaire(ctx, tx, questionnaire)
	if err != nil || !isExperience(q.JSON) {
		return nil
	}
	for _, ref := range referrals {
		_, ok, err := s.fulfilledAppointment(ctx, tx, ref)
		if err != nil {
			return err
		}
		if !ok {
			return fhir.Errorf(fhir.Unprocessable, "business-rule", "QuestionnaireResponse.basedOn",
				"patient-experience feedback on %s is taken after its appointment: none has taken place yet", ref).WithDetails("NO_APPOINTMENT_YET")
		}
	}
	return nil
}
