package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"encoding/json"
	"slices"
	"strconv"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// patientExperience reports patient-experience answers by service and
// question: how many answered, and the average of numeric answers. A
// response counts for the service of its referral's appointment that took
// place; the period applies to when it was authored (else last updated),
// the practice to its referral's.
func (s *Service) patientExperience(rd *reportData) (*report, error) {
	ctx, st := rd.ctx, rd.st
	qrs, err := s.all(ctx, st, "QuestionnaireResponse")
	if err != nil {
		return nil, err
	}
	type key struct{ service, questionnaire, linkID string }
	type tally struct {
		text    string
		n, nums int
		sum     float64
	}
	tallies := map[key]*tally{}
	experience := map[string]*fhir.Resource{} // questionnaire ref → Questionnaire, nil if not experience
	for _, res := range qrs {
		var qr struct {
			Status        string         `json:"status"`
			Questionnaire string         `json:"questionnaire"`
			BasedOn       []r4.Reference `json:"basedOn"`
			Authored      string         `json:"authored"`
			Item          []qrItem       `json:"item"`
		}
		if json.Unmarshal(res.JSON, &qr) != nil || !slices.Contains(answered, qr.Status) {
			continue
		}
		when := res.LastUpdated
		if t, ok := parseWhen(qr.Authored, s.cfg.Location); ok {
			when = t
		}
		if !rd.f.window.contains(when) {
			continue
		}
		q, seen := experience[qr.Questionnaire]
		if !seen {
			if found, err := s.questionnaire(ctx, st, qr.Questionnaire); err == nil && isExperience(found.JSON) {
				q = found
			}
			experience[qr.Questionnaire] = q
		}
		if q == nil {
			continue
		}
		service, practice := "", ""
		for _, b := range qr.BasedOn {
			r, err := rd.referralRef(elem.Str(b.Reference))
			if err != nil {
				return nil, err
			}
			if r == nil {
				continue
			}
			practice = r.practice
			if service, _, err = s.fulfilledAppointment(ctx, st, elem.Str(b.Reference)); err != nil {
				return nil, err
			}
		}
		if !rd.practiceOK(practice) || !rd.serviceOK(service) {
			continue
		}
		texts := itemTexts(q.JSON)
		for _, it := range flatten(qr.Item) {
			k := key{service, questionnaireURL(q.JSON), it.LinkID}
			t := tallies[k]
			if t == nil {
				t = &tally{text: texts[it.LinkID]}
				tallies[k] = t
			}
			t.n++
			for _, ans := range it.Answer {
				if f, ok := ans.number(); ok {
					t.nums++
					t.sum += f
				}
			}
		}
	}
	rep := &report{columns: []column{{"service", colReference}, {"questionnaire", colCanonical}, {"question", colString},
		{"text", colString}, {"responses", colInteger}, {"average", colDecimal}}}
	for k, t := range tallies {
		avg := ""
		if t.nums > 0 {
			avg = round2(t.sum / float64(t.nums))
		}
		rep.rows = append(rep.rows, []string{k.service, k.questionnaire, k.linkID, t.text, strconv.Itoa(t.n), avg})
	}
	sortRows(rep.rows, 3)
	return rep, nil
}
