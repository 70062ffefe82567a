package storetest

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The composite parameters of the served types: Questionnaire useContext
// (context-type-quantity: token$quantity, context-type-value:
// token$token) and DocumentReference relatesTo (relationship:
// token$reference).
const usageType = "http://terminology.hl7.org/CodeSystem/usage-context-type"

func questionnaire(id string, contexts ...string) *fhir.Resource {
	return &fhir.Resource{Type: "Questionnaire", ID: id, JSON: []byte(fmt.Sprintf(
		`{"resourceType":"Questionnaire","id":%q,"status":"active","useContext":[%s]}`, id, strings.Join(contexts, ",")))}
}

func useQuantity(code string, value float64, unit string) string {
	return fmt.Sprintf(`{"code":{"system":%q,"code":%q},"valueQuantity":{"value":%g,"system":"http://unitsofmeasure.org","code":%q}}`,
		usageType, code, value, unit)
}

func useRange(code string, low, high float64) string {
	return fmt.Sprintf(`{"code":{"system":%q,"code":%q},"valueRange":{"low":{"value":%g,"system":"http://unitsofmeasure.org","code":"a"},"high":{"value":%g,"system":"http://unitsofmeasure.org","code":"a"}}}`,
		usageType, code, low, high)
}

func useConcept(code string, codings ...string) string {
	var cs []string
	for _, c := range codings {
		sys, val, _ := strings.Cut(c, "|")
		cs = append(cs, fmt.Sprintf(`{"system":%q,"code":%q}`, sys, val))
	}
	return fmt.Sprintf(`{"code":{"system":%q,"code":%q},"valueCodeableConcept":{"coding":[%s]}}`, usageType, code, strings.Join(cs, ","))
}

func documentReference(id string, relates ...[2]string) *fhir.Resource {
	var rs []string
	for _, r := range relates {
		rs = append(rs, fmt.Sprintf(`{"code":%q,"target":{"reference":%q}}`, r[0], r[1]))
	}
	return &fhir.Resource{Type: "DocumentReference", ID: id, JSON: []byte(fmt.Sprintf(
		`{"resourceType":"DocumentReference","id":%q,"status":"current","content":[{"attachment":{"url":"urn:x"}}],"relatesTo":[%s]}`,
		id, strings.Join(rs, ",")))}
}

// testSearchComposite checks composite searches on hand-made data: each
// form, OR and AND, the same-element rule (a tuple matches only when all
// its components match the values of one element), an update and a
// delete replacing the tuples.
func testSearchComposite(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	const snomed = "http://snomed.info/sct"
	l.write(t0,
		questionnaire("adult", useRange("age", 18, 65), useConcept("focus", snomed+"|49601007")),
		questionnaire("older", useQuantity("age", 70, "a"), useConcept("venue", snomed+"|49601007", snomed+"|440655000")),
		// age is 3 (months) and focus is 40: age$40 must not match.
		questionnaire("infant", useQuantity("age", 3, "mo"), useQuantity("focus", 40, "a")),
		questionnaire("none"),
		documentReference("d1", [2]string{"appends", "DocumentReference/d0"}, [2]string{"replaces", "DocumentReference/d9"}),
		documentReference("d2", [2]string{"replaces", "DocumentReference/d0"}),
		documentReference("d3", [2]string{"signs", Base + "/DocumentReference/d0"}, [2]string{"transforms", "https://elsewhere.example/fhir/DocumentReference/x"}),
	)
	tests := []struct{ query, want string }{
		{"Questionnaire?context-type-quantity=age$70", "older"},
		{"Questionnaire?context-type-quantity=age$40", ""}, // a range equals no single value
		{"Questionnaire?context-type-quantity=age$gt60", "adult older"},
		{"Questionnaire?context-type-quantity=age$lt20", "adult infant"},
		{"Questionnaire?context-type-quantity=age$3|http://unitsofmeasure.org|mo", "infant"},
		{"Questionnaire?context-type-quantity=age$3||a", ""},
		{"Questionnaire?context-type-quantity=focus$40", "infant"},
		{"Questionnaire?context-type-quantity=" + url.QueryEscape(usageType+"|age") + "$ap75", "older"},
		{"Questionnaire?context-type-value=focus$49601007", "adult"},
		{"Questionnaire?context-type-value=venue$" + url.QueryEscape(snomed+"|440655000"), "older"},
		{"Questionnaire?context-type-value=focus$440655000", ""},
		{"Questionnaire?context-type-value=focus$49601007,venue$440655000", "adult older"},
		{"Questionnaire?context-type-value=venue$49601007&context-type-quantity=age$ge70", "older"},
		{"Questionnaire?context-type-value=venue$49601007&context-type-quantity=age$lt70", ""},
		{"Questionnaire?context-type-value:missing=true", "infant none"},
		{"Questionnaire?context-type-quantity:missing=false&_sort=-_id", "older infant adult"},
		{"DocumentReference?relationship=appends$DocumentReference/d0", "d1"},
		{"DocumentReference?relationship=replaces$d0", "d2"},
		{"DocumentReference?relationship=replaces$DocumentReference/d0,replaces$DocumentReference/d9", "d1 d2"},
		{"DocumentReference?relationship=appends$DocumentReference/d9", ""},
		{"DocumentReference?relationship=signs$" + url.QueryEscape(Base+"/DocumentReference/d0"), "d3"},
		{"DocumentReference?relationship=transforms$" + url.QueryEscape("https://elsewhere.example/fhir/DocumentReference/x"), "d3"},
		{"DocumentReference?relationship=transforms$x", ""},
	}
	check := func(when string) {
		t.Helper()
		o, err := search.NewOracle(l.reg, l.current())
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			q := parse(t, l.reg, tt.query)
			got := strings.Join(pages(t, s, q, nil), " ")
			if want := strings.Join(ids(o.Search(q)), " "); got != want {
				t.Errorf("%s: %s: store [%s], oracle [%s]", when, tt.query, got, want)
			}
			if when == "first" && got != tt.want {
				t.Errorf("%s: %s = [%s], want [%s]", when, tt.query, got, tt.want)
			}
		}
	}
	check("first")
	// An update replaces the tuples; a delete removes them.
	l.write(t0.Add(time.Hour), questionnaire("older", useQuantity("age", 50, "a")), &fhir.Resource{Type: "DocumentReference", ID: "d2"})
	check("after an update and a delete")
	for _, qs := range []string{"Questionnaire?context-type-quantity=age$70", "DocumentReference?relationship=replaces$d0"} {
		if got := pages(t, s, parse(t, l.reg, qs), nil); len(got) != 0 {
			t.Errorf("after an update and a delete: %s = %v, want none", qs, got)
		}
	}
}

// testSearchCompositeDifferential loads generated Questionnaires and
// DocumentReferences with several contexts and relations each and runs
// generated composite searches (prefixes, units, OR, AND, :missing,
// chains into the type, sorting, paging) against the store and the
// oracle.
func testSearchCompositeDifferential(t *testing.T, s store.Store) {
	l := newLoader(t, s)
	rnd := rand.New(rand.NewPCG(5, 8))
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	types := []string{"age", "focus", "venue", "user", "program"}
	concepts := []string{"http://snomed.info/sct|49601007", "http://snomed.info/sct|440655000", "http://snomed.info/sct|224608005", "urn:local|x$1"}
	relations := []string{"replaces", "transforms", "signs", "appends"}
	const nQ, nD = 300, 150
	var batch []*fhir.Resource
	for i := range nQ {
		var ctxs []string
		for range rnd.IntN(4) {
			typ := types[rnd.IntN(len(types))]
			switch rnd.IntN(3) {
			case 0:
				ctxs = append(ctxs, useQuantity(typ, float64(rnd.IntN(100)), []string{"a", "mo"}[rnd.IntN(2)]))
			case 1:
				lo := rnd.IntN(80)
				ctxs = append(ctxs, useRange(typ, float64(lo), float64(lo+1+rnd.IntN(30))))
			default:
				ctxs = append(ctxs, useConcept(typ, concepts[rnd.IntN(len(concepts))], concepts[rnd.IntN(len(concepts))]))
			}
		}
		r := questionnaire(fmt.Sprintf("q%03d", i), ctxs...)
		r.LastUpdated = t0.Add(time.Duration(i/3) * time.Second)
		batch = append(batch, r)
	}
	for i := range nD {
		var rels [][2]string
		for range rnd.IntN(3) {
			rels = append(rels, [2]string{relations[rnd.IntN(len(relations))], fmt.Sprintf("DocumentReference/d%03d", rnd.IntN(nD))})
		}
		r := documentReference(fmt.Sprintf("d%03d", i), rels...)
		r.LastUpdated = t0.Add(time.Duration(i/3) * time.Second)
		batch = append(batch, r)
	}
	l.write(t0, batch...)
	// Rewrite some, delete some.
	var changes []*fhir.Resource
	for i := 0; i < nQ; i += 17 {
		changes = append(changes, questionnaire(fmt.Sprintf("q%03d", i), useQuantity("age", float64(i%90), "a")))
	}
	for i := 0; i < nD; i += 13 {
		changes = append(changes, &fhir.Resource{Type: "DocumentReference", ID: fmt.Sprintf("d%03d", i)})
	}
	l.write(t0.Add(time.Hour), changes...)

	o, err := search.NewOracle(l.reg, l.current())
	if err != nil {
		t.Fatal(err)
	}
	pick := func(list ...string) string { return list[rnd.IntN(len(list))] }
	typ := func() string {
		t := types[rnd.IntN(len(types))]
		if rnd.IntN(3) == 0 {
			t = url.QueryEscape(usageType + "|" + t)
		}
		return t
	}
	quantity := func() string {
		v := pick("", "gt", "lt", "ge", "le", "ne", "eq", "sa", "eb", "ap") + fmt.Sprint(rnd.IntN(100))
		if rnd.IntN(3) == 0 {
			v += url.QueryEscape("|http://unitsofmeasure.org|" + pick("a", "mo"))
		}
		return "context-type-quantity=" + typ() + "$" + v
	}
	concept := func() string {
		c := concepts[rnd.IntN(len(concepts))]
		if rnd.IntN(2) == 0 {
			_, c, _ = strings.Cut(c, "|")
		}
		return "context-type-value=" + typ() + "$" + url.QueryEscape(strings.ReplaceAll(c, "$", `\$`))
	}
	relation := func() string {
		return "relationship=" + pick(relations...) + "$" + pick("DocumentReference/", "") + fmt.Sprintf("d%03d", rnd.IntN(nD))
	}
	const queries = 300
	nonEmpty := 0
	for qi := range queries {
		var parts []string
		qtype := "Questionnaire"
		if qi%3 == 2 {
			qtype = "DocumentReference"
			parts = append(parts, relation())
			if rnd.IntN(3) == 0 {
				parts[0] += "," + strings.TrimPrefix(relation(), "relationship=")
			}
			if rnd.IntN(4) == 0 {
				parts = append(parts, "relationship:missing="+pick("true", "false"))
			}
		} else {
			for range 1 + rnd.IntN(2) {
				switch rnd.IntN(5) {
				case 0, 1:
					parts = append(parts, quantity())
				case 2, 3:
					parts = append(parts, concept())
				default:
					parts = append(parts, pick("context-type-quantity", "context-type-value")+":missing="+pick("true", "false"))
				}
			}
			if rnd.IntN(3) == 0 { // OR of two tuples
				switch {
				case strings.HasPrefix(parts[0], "context-type-quantity="):
					parts[0] += "," + strings.SplitN(quantity(), "=", 2)[1]
				case strings.HasPrefix(parts[0], "context-type-value="):
					parts[0] += "," + strings.SplitN(concept(), "=", 2)[1]
				}
			}
		}
		if rnd.IntN(4) == 0 {
			parts = append(parts, "_sort="+pick("_id", "-_id", "-_lastUpdated"))
		}
		parts = append(parts, "_count="+pick("5", "20", "1000"))
		qs := qtype + "?" + strings.Join(parts, "&")
		q := parse(t, l.reg, qs)
		o.Now = time.Now().UnixMicro()
		want := ids(o.Search(q))
		got := pages(t, s, q, nil)
		if len(want) > 0 {
			nonEmpty++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\nstore  %d %v\noracle %d %v", qs, len(got), head(got), len(want), head(want))
		}
	}
	if nonEmpty < queries/3 {
		t.Errorf("only %d of %d generated composite queries match anything", nonEmpty, queries)
	}
	t.Logf("%d composite queries, %d with matches", queries, nonEmpty)
}
