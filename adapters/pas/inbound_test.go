package pas_test

// Inbound: messages from the PAS applied through the write path, each
// checked by the resources it leaves, and messages refused with the right
// acknowledgement and nothing applied.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/adapters/mllp"
	"github.com/signpost-fhir/signpost/adapters/pas"
	"github.com/signpost-fhir/signpost/app/apptest"
	"github.com/signpost-fhir/signpost/conformance"
	"github.com/signpost-fhir/signpost/domain/booking"
	"github.com/signpost-fhir/signpost/domain/referral"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/fhir/validation"
)

// nhsNo returns a valid NHS number made from n (mod-11 check digit),
// skipping those whose check digit would be 10.
func nhsNo(n int) string {
	for ; ; n++ {
		s := fmt.Sprintf("%09d", 900000000+n%100000000)
		sum := 0
		for i := range 9 {
			sum += int(s[i]-'0') * (10 - i)
		}
		check := 11 - sum%11
		if check == 11 {
			check = 0
		}
		if check != 10 {
			return s + fmt.Sprint(check)
		}
	}
}

// er7 writes an HL7 message: MSH for typ (such as "SIU^S12^SIU_S12") with
// control id ctrl, version 2.5.1, then segs, one a line.
func er7(typ, ctrl string, segs ...string) string {
	return "MSH|^~\\&|PAS|RH8|SIGNPOST|RH8|20261206120000||" + typ + "|" + ctrl + "|P|2.5.1\n" + strings.Join(segs, "\n")
}

// ts writes t as an HL7 timestamp.
func ts(t time.Time) string { return hl7v2.FormatTime(t) }

// pidOf is a PID for NHS number nhs and PAS number pasNo.
func pidOf(nhs, pasNo string) string {
	return "PID|1||" + nhs + "^^^NHS^NH~" + pasNo + "^^^RH8^PI||PARKER^ROSE^ANN^^MS^^L||19700101|F|||2 MILL LANE^^EXETER^DEVON^EX2 2BB^GBR^H||01392 111111^PRN^PH"
}

// booking is an SIU message about filler id filler for the patient pid at
// clinic from start for minutes.
func siu(event, ctrl, filler, pid, clinic string, start time.Time, minutes int, extra ...string) string {
	segs := []string{
		fmt.Sprintf("SCH||%s^PAS|||||ROUTINE^Routine^HL70276|NEW^New patient^HL70277|%d|MIN|^^%d^%s||||||||||||||BOOKED^Booked^HL70278", filler, minutes, minutes, ts(start)),
		"NTE|1||first visit",
		pid,
		"RGS|1|A",
		fmt.Sprintf("AIS|1|A|CARD-NEW^New cardiology outpatient^LOCAL|%s|0|MIN|%d|MIN", ts(start), minutes),
		fmt.Sprintf("AIL|1|A|%s^CLINIC 3^^RH8|CLINIC^Outpatient clinic|^Cardiology|%s|0|MIN|%d|MIN", clinic, ts(start), minutes),
		fmt.Sprintf("AIP|1|A|C3456789^JONES^ALED^^^DR|CONS^Consultant|^Cardiology|%s|0|MIN|%d|MIN", ts(start), minutes),
	}
	return er7("SIU^"+event+"^SIU_S12", ctrl, append(segs, extra...)...)
}

// ref names an SIU's appointment only (for S15, S17, S26).
func siuRef(event, ctrl, filler string, extra ...string) string {
	return er7("SIU^"+event+"^SIU_S12", ctrl, append([]string{"SCH||" + filler + "^PAS||||CANC^Patient cancelled"}, extra...)...)
}

// expectAck fails unless ack carries code in MSA-1.
func expectAck(t testing.TB, ack *hl7v2.Message, code string) {
	t.Helper()
	if got := ack.Get("MSA-1"); got != code {
		t.Fatalf("MSA-1 %q, want %q; acknowledgement:\n%s", got, code, ack)
	}
}

// byFiller returns the appointments with the PAS's filler id.
func (f *fixture) byFiller(filler string) []map[string]any {
	f.T.Helper()
	return f.storeSearch("Appointment", "identifier", pas.FillerSystem(instance)+"|"+filler)
}

// storeSearch finds the resources of typ whose token param is value,
// straight from the store.
func (f *fixture) storeSearch(typ, param, value string) []map[string]any {
	f.T.Helper()
	q, err := f.App.Search.Parse(typ, map[string][]string{param: {value}, "_count": {"100"}}, searchOpts)
	if err != nil {
		f.T.Fatal(err)
	}
	page, err := f.App.Store.Search(context.Background(), q)
	if err != nil {
		f.T.Fatal(err)
	}
	var out []map[string]any
	for _, r := range page.Resources {
		var m map[string]any
		_ = json.Unmarshal(r.JSON, &m)
		out = append(out, m)
	}
	return out
}

// one returns the only element of rs.
func one(t testing.TB, what string, rs []map[string]any) map[string]any {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("%s: %d found, want 1: %v", what, len(rs), rs)
	}
	return rs[0]
}

// searchOpts parse the tests' searches.
var searchOpts = search.ParseOptions{MaxCount: 1000}

func str(v any) string { s, _ := v.(string); return s }

// slotStatus is Slot/id's status.
func (f *fixture) slotStatus(id string) string { return str(f.Read("Slot", id)["status"]) }

// registered registers a new patient through an ADT^A04 and returns
// their id.
func (f *fixture) registered(nhs, pasNo string) string {
	f.T.Helper()
	expectAck(f.T, f.send(er7("ADT^A04^ADT_A01", "REG-"+nhs, "EVN|A04", pidOf(nhs, pasNo))), "AA")
	return str(one(f.T, "patient "+nhs, f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+nhs))["id"])
}

// TestInboundApplied: each message type, applied, leaves the resources
// the mapping says, through the domain's rules (slots claimed and freed).
func TestInboundApplied(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	v, err := validation.New(conformance.StructureDefinitions(), conformance.Terminology())
	if err != nil {
		t.Fatal(err)
	}
	valid := func(what string, r map[string]any) {
		t.Helper()
		b, _ := json.Marshal(r)
		for _, is := range v.Validate(b) {
			if is.Severity == "" || is.Severity == "error" || is.Severity == "fatal" {
				t.Errorf("%s does not validate: %s at %v\n%s", what, is.Diagnostics, is.Expression, b)
			}
		}
	}
	nhs, pasNo := nhsNo(101), "RH8P101"

	// ADT^A04: a new patient, managed by the trust.
	ack := f.send(er7("ADT^A04^ADT_A01", "A04-1", "EVN|A04", pidOf(nhs, pasNo)))
	expectAck(t, ack, "AA")
	p := one(t, "registered patient", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+nhs))
	valid("the registered Patient", p)
	pid := str(p["id"])
	if got := fmt.Sprint(p["identifier"]); !strings.Contains(got, pasSystem) || !strings.Contains(got, pasNo) {
		t.Errorf("identifiers %s lack the PAS number", got)
	}
	if p["birthDate"] != "1970-01-01" || p["gender"] != "female" || !strings.Contains(fmt.Sprint(p["name"]), "PARKER") ||
		!strings.Contains(fmt.Sprint(p["managingOrganization"]), "Organization/trust") || !strings.Contains(fmt.Sprint(p["address"]), "EX2 2BB") {
		t.Errorf("patient %v", p)
	}

	// ADT^A08 of the same patient, found by PAS number alone: updated.
	ack = f.send(er7("ADT^A08^ADT_A01", "A08-1", "EVN|A08",
		"PID|1||"+pasNo+"^^^RH8^PI||PARKER^ROSE^^^MS||19700101|F|||9 NEW ROAD^^EXETER^^EX3 3CC^GBR^H"))
	expectAck(t, ack, "AA")
	p = f.Read("Patient", pid)
	if !strings.Contains(fmt.Sprint(p["address"]), "EX3 3CC") || !strings.Contains(fmt.Sprint(p["identifier"]), nhs) {
		t.Errorf("after A08: %v", p)
	}

	// ADT^A31 of an unknown patient: created, and MSA-3 says so.
	other := nhsNo(202)
	ack = f.send(er7("ADT^A31^ADT_A05", "A31-1", "EVN|A31", pidOf(other, "RH8P202")))
	expectAck(t, ack, "AA")
	if !strings.Contains(ack.Get("MSA-3"), "not known") {
		t.Errorf("MSA-3 %q does not say the patient was created", ack.Get("MSA-3"))
	}
	one(t, "A31 patient", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+other))
	ack = f.send(er7("ADT^A28^ADT_A05", "A28-1", "EVN|A28", pidOf(nhsNo(303), "RH8P303")))
	expectAck(t, ack, "AA")

	// SIU^S12 in slot-0: booked, slot busy, filler id kept, AIP a participant.
	ack = f.send(siu("S12", "S12-1", "F1", pidOf(nhs, pasNo), clinic, f.SlotStart(0), 15))
	expectAck(t, ack, "AA")
	a1 := one(t, "F1", f.byFiller("F1"))
	valid("the booked Appointment", a1)
	if a1["status"] != "booked" || !strings.Contains(fmt.Sprint(a1["slot"]), "Slot/slot-0") ||
		!strings.Contains(fmt.Sprint(a1["participant"]), "Patient/"+pid) || !strings.Contains(fmt.Sprint(a1["participant"]), "C3456789") ||
		a1["comment"] != "first visit" || a1["minutesDuration"] != float64(15) {
		t.Errorf("appointment %v", a1)
	}
	if s := f.slotStatus("slot-0"); s != "busy" {
		t.Errorf("slot-0 is %s", s)
	}

	// S12 over slot-1 and slot-2 (30 minutes): both busy.
	expectAck(t, f.send(siu("S12", "S12-2", "F2", pidOf(nhs, pasNo), clinic, f.SlotStart(1), 30)), "AA")
	if s1, s2 := f.slotStatus("slot-1"), f.slotStatus("slot-2"); s1 != "busy" || s2 != "busy" {
		t.Errorf("slot-1 %s, slot-2 %s", s1, s2)
	}

	// S12 outside the published slots: a Slot created for it, busy.
	late := f.First.Add(5 * time.Hour)
	expectAck(t, f.send(siu("S12", "S12-3", "F3", pidOf(nhs, pasNo), clinic, late, 20)), "AA")
	a3 := one(t, "F3", f.byFiller("F3"))
	slotRef := str(a3["slot"].([]any)[0].(map[string]any)["reference"])
	s := f.Read("Slot", strings.TrimPrefix(slotRef, "Slot/"))
	if s["status"] != "busy" || s["start"] != late.UTC().Format(time.RFC3339) || s["end"] != late.Add(20*time.Minute).UTC().Format(time.RFC3339) {
		t.Errorf("created slot %v", s)
	}
	valid("the Slot created for a booking outside the published slots", s)

	// S14 with a new note: the comment changes, nothing else.
	expectAck(t, f.send(strings.Replace(siu("S14", "S14-1", "F1", pidOf(nhs, pasNo), clinic, f.SlotStart(0), 15), "first visit", "bring your letter", 1)), "AA")
	if a := f.Read("Appointment", str(a1["id"])); a["comment"] != "bring your letter" || a["status"] != "booked" {
		t.Errorf("after S14: %v", a)
	}

	// S13: F1 moves to slot-3: the old one cancelled, slot-0 freed, a new one replaces it.
	expectAck(t, f.send(siu("S13", "S13-1", "F1", pidOf(nhs, pasNo), clinic, f.SlotStart(3), 15)), "AA")
	if a := f.Read("Appointment", str(a1["id"])); a["status"] != "cancelled" {
		t.Errorf("rescheduled appointment is %v", a["status"])
	}
	var moved map[string]any
	for _, a := range f.byFiller("F1") {
		if a["status"] == "booked" {
			moved = a
		}
	}
	if moved == nil || !strings.Contains(fmt.Sprint(moved["slot"]), "Slot/slot-3") ||
		!strings.Contains(fmt.Sprint(moved["extension"]), booking.ExtReplaces) || !strings.Contains(fmt.Sprint(moved["extension"]), str(a1["id"])) {
		t.Errorf("the rescheduled booking: %v", moved)
	}
	if s0, s3 := f.slotStatus("slot-0"), f.slotStatus("slot-3"); s0 != "free" || s3 != "busy" {
		t.Errorf("slot-0 %s, slot-3 %s", s0, s3)
	}
	valid("the rescheduled Appointment", moved)

	// S15 cancels F2: its slots are free again.
	expectAck(t, f.send(siuRef("S15", "S15-1", "F2")), "AA")
	a2 := one(t, "F2", f.byFiller("F2"))
	if a2["status"] != "cancelled" || !strings.Contains(fmt.Sprint(a2["cancelationReason"]), "Patient cancelled") {
		t.Errorf("after S15: %v", a2)
	}
	if s1, s2 := f.slotStatus("slot-1"), f.slotStatus("slot-2"); s1 != "free" || s2 != "free" {
		t.Errorf("after S15 slot-1 %s, slot-2 %s", s1, s2)
	}

	// S17 deletes F3: entered-in-error, its slot freed.
	expectAck(t, f.send(siuRef("S17", "S17-1", "F3")), "AA")
	if a := one(t, "F3", f.byFiller("F3")); a["status"] != "entered-in-error" {
		t.Errorf("after S17: %v", a["status"])
	}
	if st := str(f.Read("Slot", strings.TrimPrefix(slotRef, "Slot/"))["status"]); st != "free" {
		t.Errorf("after S17 the created slot is %s", st)
	}

	// S26 once the moved appointment has ended: noshow.
	apptest.IntoThePast(t, f.App, str(moved["id"]), 2*time.Hour)
	expectAck(t, f.send(siuRef("S26", "S26-1", "F1")), "AA")
	if a := f.Read("Appointment", str(moved["id"])); a["status"] != "noshow" {
		t.Errorf("after S26: %v", a["status"])
	}

	// A40: the patient registered by A31 merges into the first; a future
	// booking of theirs moves with them.
	expectAck(t, f.send(siu("S12", "S12-4", "F4", pidOf(other, "RH8P202"), clinic, f.SlotStart(4), 15)), "AA")
	ack = f.send(er7("ADT^A40^ADT_A39", "A40-1", "EVN|A40", "PID|1||"+nhs+"^^^NHS^NH~"+pasNo+"^^^RH8^PI||PARKER^ROSE",
		"MRG|RH8P202^^^RH8^PI"))
	expectAck(t, ack, "AA")
	gone := one(t, "merged", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+other))
	if gone["active"] != false || !strings.Contains(fmt.Sprint(gone["link"]), "Patient/"+pid) || !strings.Contains(fmt.Sprint(gone["link"]), "replaced-by") {
		t.Errorf("merged patient %v", gone)
	}
	valid("the merged Patient", gone)
	if l := fmt.Sprint(f.Read("Patient", pid)["link"]); !strings.Contains(l, "replaces") {
		t.Errorf("survivor links %s", l)
	}
	var f4 map[string]any
	for _, a := range f.byFiller("F4") {
		if a["status"] == "booked" {
			f4 = a
		}
	}
	if f4 == nil || !strings.Contains(fmt.Sprint(f4["participant"]), "Patient/"+pid) || !strings.Contains(fmt.Sprint(f4["slot"]), "slot-4") {
		t.Errorf("the merged patient's booking did not move: %v", f4)
	}
	if s := f.slotStatus("slot-4"); s != "busy" {
		t.Errorf("slot-4 %s", s)
	}
}

// TestInboundRefused: malformed and unappliable messages, each answered
// with the right acknowledgement code (and ERR naming the segment and
// field where one is given), and nothing applied: the store's versions of
// every patient, appointment, slot and schedule stay as they were.
func TestInboundRefused(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, func(s *pas.Settings) {
		s.Clinics["DERM1"] = "sched-other"
		s.Clinics["GHOST"] = "sched-missing"
	})
	nhs, pasNo := nhsNo(404), "RH8P404"
	pid := pidOf(nhs, pasNo)
	f.registered(nhs, pasNo)
	expectAck(t, f.send(siu("S12", "BOOKED-1", "F-BOOKED", pid, clinic, f.SlotStart(5), 15)), "AA")
	expectAck(t, f.send(siu("S12", "BOOKED-2", "F-OTHER", pid, clinic, f.SlotStart(3), 15)), "AA")
	expectAck(t, f.send(er7("ADT^A08^ADT_A01", "DUP-1", "EVN|A08", pid)), "AA")
	tomorrow := f.First.Add(2 * time.Hour)
	apptest.Seed(t, f.App,
		otherSchedule(), slotRes("slot-o", "sched-other", tomorrow, slotLength),
		map[string]any{"resourceType": "Appointment", "id": "appt-other", "status": "booked",
			"slot": []any{map[string]any{"reference": "Slot/slot-o"}}, "start": tomorrow.Format(time.RFC3339), "end": tomorrow.Add(slotLength).Format(time.RFC3339),
			"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "accepted"}}},
	)
	free := f.SlotStart(4)
	s12 := func(ctrl string, edit func(string) string) string {
		return edit(siu("S12", ctrl, "F-"+ctrl, pid, clinic, free, 15))
	}
	replace := func(old, nw string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("the message has no %q to replace", old)
			}
			return strings.Replace(s, old, nw, 1)
		}
	}
	drop := func(seg string) func(string) string {
		return func(s string) string {
			var keep []string
			for _, l := range strings.Split(s, "\n") {
				if !strings.HasPrefix(l, seg+"|") && l != seg {
					keep = append(keep, l)
				}
			}
			return strings.Join(keep, "\n")
		}
	}
	head := "MSH|^~\\&|PAS|RH8|SIGNPOST|RH8|20261206120000||"
	for _, tc := range []struct {
		name      string
		msg       string
		code      string
		seg       string // ERR-2.1, when checked
		field     string // ERR-2.3, when checked
		noControl bool   // MSA-2 is empty: no control id could be read
	}{
		{"no MSH", "PID|1||" + nhs + "^^^NHS^NH", "AR", "", "", true},
		{"not HL7 at all", "hello, PAS here", "AR", "", "", true},
		{"MSH-2 too short", "MSH|^~\\|PAS|RH8|SIGNPOST|RH8|20261206120000||ADT^A08|BAD-ENC-1|P|2.5.1\nPID|1||" + pasNo + "^^^RH8^PI", "AR", "MSH", "2", false},
		{"encoding characters are letters", "MSH|abcd|PAS|RH8|SIGNPOST|RH8|20261206120000||ADT^A08|BAD-ENC-2|P|2.5.1", "AR", "MSH", "2", false},
		{"encoding characters repeat", "MSH|^^\\&|PAS|RH8|SIGNPOST|RH8|20261206120000||ADT^A08|BAD-ENC-3|P|2.5.1", "AR", "MSH", "2", false},
		{"truncated MSH", "MSH|^~\\&|PAS|RH8", "AR", "MSH", "9", true},
		{"no control id", head + "ADT^A08^ADT_A01||P|2.5.1\nPID|1||" + pasNo + "^^^RH8^PI", "AR", "MSH", "10", true},
		{"no message type", head + "|NOTYPE-1|P|2.5.1", "AR", "MSH", "9", false},
		{"no trigger event", head + "SIU|NOEVENT-1|P|2.5.1\nSCH||X^PAS", "AR", "MSH", "9", false},
		{"no processing id", head + "ADT^A08^ADT_A01|NOPROC-1||2.5.1\n" + pid, "AR", "MSH", "11", false},
		{"version 2.6", head + "ADT^A08^ADT_A01|V26-1|P|2.6\n" + pid, "AR", "MSH", "12", false},
		{"version 2.2", head + "ADT^A08^ADT_A01|V22-1|P|2.2\n" + pid, "AR", "MSH", "12", false},
		{"no version", head + "ADT^A08^ADT_A01|V0-1|P\n" + pid, "AR", "MSH", "12", false},
		{"unsupported type ORU", er7("ORU^R01^ORU_R01", "ORU-1", pid, "OBX|1|TX|X||hello"), "AR", "MSH", "9", false},
		{"unsupported event SIU^S99", siu("S99", "S99-1", "F-S99", pid, clinic, free, 15), "AR", "MSH", "9", false},
		{"unsupported event ADT^A01", er7("ADT^A01^ADT_A01", "A01-1", "EVN|A01", pid), "AR", "MSH", "9", false},
		{"bad segment name", er7("ADT^A08^ADT_A01", "SEGNAME-1", "EVN|A08", "pid|1||"+nhs+"^^^NHS^NH"), "AR", "", "", false},
		{"unknown escape in PID-5", er7("ADT^A08^ADT_A01", "ESC-1", "EVN|A08", strings.Replace(pid, "PARKER", "PAR\\Q\\KER", 1)), "AR", "PID", "5", false},
		{"escape not closed in NTE", s12("ESC-2", replace("first visit", "first \\T visit")), "AR", "NTE", "3", false},
		{"odd hex escape", er7("ADT^A08^ADT_A01", "ESC-3", "EVN|A08", strings.Replace(pid, "EXETER", "EXE\\X4\\TER", 1)), "AR", "PID", "11", false},
		{"S12 without PID", s12("NOPID-1", drop("PID")), "AR", "", "", false},
		{"S12 without SCH", s12("NOSCH-1", drop("SCH")), "AR", "", "", false},
		{"S12 truncated SCH (no filler id)", s12("TRSCH-1", func(s string) string { return strings.Replace(drop("SCH")(s), "NTE|", "SCH|\nNTE|", 1) }), "AR", "SCH", "2", false},
		{"S12 truncated PID", s12("TRPID-1", replace(pid, "PID|1")), "AR", "PID", "3", false},
		{"S12 bad NHS number", s12("BADNHS-1", replace(nhs+"^^^NHS", "1234567890^^^NHS")), "AR", "PID", "3", false},
		{"S12 unknown patient", s12("UNKPAT-1", replace(pid, pidOf(nhsNo(909), "RH8P909"))), "AE", "PID", "3", false},
		{"S12 slot already booked", siu("S12", "TAKEN-1", "F-TAKEN", pid, clinic, f.SlotStart(5), 15), "AE", "AIL", "6", false},
		{"S12 across a booked slot", siu("S12", "TAKEN-2", "F-TAKEN2", pid, clinic, f.SlotStart(4), 30), "AE", "AIL", "6", false},
		{"S12 not on the slots' times", siu("S12", "SKEW-1", "F-SKEW", pid, clinic, f.SlotStart(4).Add(5*time.Minute), 15), "AE", "AIL", "6", false},
		{"S12 unknown clinic", siu("S12", "CLINIC-1", "F-CLINIC", pid, "XYZ", free, 15), "AR", "AIL", "3", false},
		{"S12 clinic of a service the PAS does not own", siu("S12", "DERM-1", "F-DERM", pid, "DERM1", free, 15), "AR", "AIL", "3", false},
		{"S12 clinic mapped to a missing schedule", siu("S12", "GHOST-1", "F-GHOST", pid, "GHOST", free, 15), "AR", "AIL", "3", false},
		{"S12 bad start time", s12("BADTIME-1", replace("AIL|1|A|"+clinic+"^CLINIC 3^^RH8|CLINIC^Outpatient clinic|^Cardiology|"+ts(free), "AIL|1|A|"+clinic+"^CLINIC 3^^RH8|CLINIC^Outpatient clinic|^Cardiology|2026134")), "AR", "AIL", "6", false},
		{"S12 bad duration units", s12("UNITS-1", replace("|0|MIN|15|MIN\nAIP", "|0|MIN|15|FORTNIGHT\nAIP")), "AR", "AIL", "10", false},
		{"S12 in the past", siu("S12", "PAST-1", "F-PAST", pid, clinic, f.First.AddDate(0, 0, -3), 15), "AE", "", "", false},
		{"S12 filler status cancelled", s12("STATUS-1", replace("BOOKED^Booked^HL70278", "Cancelled^Cancelled^HL70278")), "AR", "SCH", "25", false},
		{"S12 filler id already booked", siu("S12", "AGAIN-1", "F-BOOKED", pid, clinic, free, 15), "AR", "SCH", "2", false},
		{"S13 to a booked slot (the cancel rolls back)", siu("S13", "MOVE-1", "F-BOOKED", pid, clinic, f.SlotStart(3), 15), "AE", "AIL", "6", false},
		{"S14 with a bad start time", strings.Replace(siu("S14", "MOD-1", "F-BOOKED", pid, clinic, f.SlotStart(5), 15), "|"+ts(f.SlotStart(5))+"|0|MIN|15|MIN\nAIP", "|20261399|0|MIN|15|MIN\nAIP", 1), "AR", "AIL", "6", false},
		{"S15 of an unknown appointment", siuRef("S15", "CANC-1", "F-NOBODY"), "AE", "SCH", "2", false},
		{"S15 of an appointment at a service not owned", er7("SIU^S15^SIU_S12", "CANC-2", "SCH|appt-other^SIGNPOST||||CANC^Cancelled"), "AR", "SCH", "2", false},
		{"S15 naming no appointment", er7("SIU^S15^SIU_S12", "CANC-3", "SCH|||||CANC^Cancelled"), "AR", "SCH", "2", false},
		{"S26 before the appointment ended", siuRef("S26", "NOSHOW-1", "F-BOOKED"), "AE", "SCH", "2", false},
		{"A08 unknown sex", er7("ADT^A08^ADT_A01", "SEX-1", "EVN|A08", strings.Replace(pid, "|F|", "|Z|", 1)), "AR", "PID", "8", false},
		{"A04 bad birth date", er7("ADT^A04^ADT_A01", "BORN-1", "EVN|A04", strings.Replace(pid, "19700101", "1970-01-01", 1)), "AR", "PID", "7", false},
		{"A04 without a usable identifier", er7("ADT^A04^ADT_A01", "NOID-1", "EVN|A04", "PID|1||D1234^^^DVLA^DL||NOONE^NOBODY"), "AR", "PID", "3", false},
		{"A04 without PID", er7("ADT^A04^ADT_A01", "NOPID-2", "EVN|A04"), "AR", "", "", false},
		{"A40 without MRG", er7("ADT^A40^ADT_A39", "MERGE-1", "EVN|A40", pid), "AR", "", "", false},
		{"A40 of an unknown patient", er7("ADT^A40^ADT_A39", "MERGE-2", "EVN|A40", pid, "MRG|RH8P999^^^RH8^PI"), "AE", "MRG", "1", false},
		{"A40 of a patient into themself", er7("ADT^A40^ADT_A39", "MERGE-3", "EVN|A40", pid, "MRG|"+pasNo+"^^^RH8^PI"), "AR", "MRG", "1", false},
		{"control id reused for other content", er7("ADT^A08^ADT_A01", "DUP-1", "EVN|A08", strings.Replace(pid, "ROSE", "ROSA", 1)), "AR", "MSH", "10", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg
			before := apptest.Versions(t, f.App, "Patient", "Appointment", "Slot", "Schedule")
			ack := f.send(msg)
			if got := ack.Get("MSA-1"); got != tc.code {
				t.Errorf("MSA-1 %q, want %q:\n%s", got, tc.code, ack)
			}
			if tc.seg != "" && (ack.Get("ERR-2.1") != tc.seg || ack.Get("ERR-2.3") != tc.field) {
				t.Errorf("ERR-2 %q, want %s field %s:\n%s", ack.Raw("ERR-2"), tc.seg, tc.field, ack)
			}
			if ack.Get("MSA-3") == "" || ack.Get("ERR-8") == "" {
				t.Errorf("no reason given:\n%s", ack)
			}
			if want, err := hl7v2.Parse([]byte(strings.ReplaceAll(msg, "\n", "\r"))); err == nil && !tc.noControl && ack.Get("MSA-2") != want.ControlID() {
				t.Errorf("MSA-2 %q, want %q", ack.Get("MSA-2"), want.ControlID())
			}
			if after := apptest.Versions(t, f.App, "Patient", "Appointment", "Slot", "Schedule"); !maps.Equal(before, after) {
				t.Errorf("the message changed the store:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestInboundResend: a resent message is answered with the same
// acknowledgement, byte for byte, and applied once, whatever its segment
// endings; a rejected message's AR is recorded and given again; an AE is
// not recorded, so the same message applies once its cause is fixed.
func TestInboundResend(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	nhs, pasNo := nhsNo(606), "RH8P606"
	a04 := er7("ADT^A04^ADT_A01", "RS-1", "EVN|A04", pidOf(nhs, pasNo))
	first := f.send(a04)
	expectAck(t, first, "AA")
	before := apptest.Versions(t, f.App, "Patient", "Appointment", "Slot")
	for _, resend := range []string{a04, strings.ReplaceAll(a04, "\n", "\r\n")} {
		again := f.send(resend)
		if string(again.Encode()) != string(first.Encode()) {
			t.Errorf("the resend was answered\n%s\nnot as the first\n%s", again, first)
		}
	}
	if after := apptest.Versions(t, f.App, "Patient", "Appointment", "Slot"); !maps.Equal(before, after) {
		t.Errorf("the resend was applied again:\nbefore %v\nafter  %v", before, after)
	}
	one(t, "patients", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|"+nhs))

	// AR: recorded, the same answer again.
	bad := siu("S12", "RS-2", "F-RS2", pidOf(nhs, pasNo), "NOWHERE", f.SlotStart(0), 15)
	ar := f.send(bad)
	expectAck(t, ar, "AR")
	if again := f.send(bad); string(again.Encode()) != string(ar.Encode()) {
		t.Errorf("the rejected message's resend was answered\n%s\nnot\n%s", again, ar)
	}

	// AE: not recorded; once the patient is registered the resend applies.
	later, laterPAS := nhsNo(707), "RH8P707"
	s12 := siu("S12", "RS-3", "F-RS3", pidOf(later, laterPAS), clinic, f.SlotStart(1), 15)
	expectAck(t, f.send(s12), "AE")
	f.registered(later, laterPAS)
	expectAck(t, f.send(s12), "AA")
	one(t, "F-RS3", f.byFiller("F-RS3"))
	if s := f.slotStatus("slot-1"); s != "busy" {
		t.Errorf("slot-1 is %s", s)
	}
}

// TestInboundConcurrentCopies: copies of one message arriving together
// over separate connections are applied once, and every copy is answered
// with the one acknowledgement recorded.
func TestInboundConcurrentCopies(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	nhs, pasNo := nhsNo(808), "RH8P808"
	f.registered(nhs, pasNo)
	msg := []byte(strings.ReplaceAll(siu("S12", "CC-1", "F-CC", pidOf(nhs, pasNo), clinic, f.SlotStart(2), 15), "\n", "\r"))
	const copies = 8
	answers := make([][]byte, copies)
	errs := make([]error, copies)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range copies {
		wg.Go(func() {
			c := &mllp.Client{Addr: f.PAS.Addr().String(), AckTimeout: 10 * time.Second}
			defer c.Close()
			<-start
			answers[i], errs[i] = c.Send(context.Background(), msg)
		})
	}
	close(start)
	wg.Wait()
	for i := range copies {
		if errs[i] != nil {
			t.Fatalf("copy %d: %v", i, errs[i])
		}
		ack, err := hl7v2.Parse(answers[i])
		if err != nil {
			t.Fatal(err)
		}
		expectAck(t, ack, "AA")
		if string(answers[i]) != string(answers[0]) {
			t.Errorf("copy %d was answered\n%q\nnot as copy 0\n%q", i, answers[i], answers[0])
		}
	}
	one(t, "F-CC", f.byFiller("F-CC"))
	if s := f.slotStatus("slot-2"); s != "busy" {
		t.Errorf("slot-2 is %s", s)
	}
}

// TestInboundAckModes: original mode answers AA/AE/AR; enhanced mode
// answers the accept acknowledgement MSH-15 asks for (CA, CE, CR), else
// the application acknowledgement MSH-16 asks for, else nothing.
func TestInboundAckModes(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	nhs, pasNo := nhsNo(909), "RH8P909"
	f.registered(nhs, pasNo)
	unknown := pidOf(nhsNo(1010), "RH8P1010")
	for _, tc := range []struct {
		name       string
		msh15      string
		msh16      string
		pid        string
		want       string // "" for no acknowledgement
		wantStored bool
	}{
		{"original, applied", "", "", pidOf(nhs, pasNo), "AA", true},
		{"original, unknown patient", "", "", unknown, "AE", false},
		{"enhanced AL/NE, applied", "AL", "NE", pidOf(nhs, pasNo), "CA", true},
		{"enhanced AL/AL, unknown patient", "AL", "AL", unknown, "CE", false},
		{"enhanced NE/AL, applied", "NE", "AL", pidOf(nhs, pasNo), "AA", true},
		{"enhanced ER/AL, applied", "ER", "AL", pidOf(nhs, pasNo), "AA", true},
		{"enhanced ER/NE, unknown patient", "ER", "NE", unknown, "CE", false},
		{"enhanced NE/NE, applied", "NE", "NE", pidOf(nhs, pasNo), "", true},
		{"enhanced SU/ER, applied", "SU", "ER", pidOf(nhs, pasNo), "CA", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			filler := "F-MODE-" + strings.NewReplacer(" ", "-", "/", "-", ",", "").Replace(tc.name)
			slot := len(f.storeSearch("Appointment", "status", "booked"))
			msg := siu("S12", filler, filler, tc.pid, clinic, f.SlotStart(slot), 15)
			msg = strings.Replace(msg, "|P|2.5.1", "|P|2.5.1|||"+tc.msh15+"|"+tc.msh16, 1)
			raw, err := f.PAS.Receive(context.Background(), []byte(strings.ReplaceAll(msg, "\n", "\r")))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if raw != nil {
					t.Errorf("answered %q, want no acknowledgement", raw)
				}
			} else {
				ack, err := hl7v2.Parse(raw)
				if err != nil {
					t.Fatalf("%v: %q", err, raw)
				}
				expectAck(t, ack, tc.want)
			}
			if got := len(f.byFiller(filler)) == 1; got != tc.wantStored {
				t.Errorf("applied %v, want %v", got, tc.wantStored)
			}
		})
	}
}

// TestInboundAudited: a write an inbound message makes is audited as the
// instance's (client id adapter/pas-rh8), not as an anonymous server
// write.
func TestInboundAudited(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	id := f.registered(nhsNo(1111), "RH8P1111")
	events := f.storeSearch("AuditEvent", "entity", "Patient/"+id)
	if len(events) == 0 {
		t.Fatal("no AuditEvent names the patient the PAS registered")
	}
	for _, ev := range events {
		who := fmt.Sprint(ev["agent"])
		if !strings.Contains(who, "adapter/"+instance) {
			t.Errorf("AuditEvent %v does not name the instance: agent %s", ev["id"], who)
		}
	}
}

// TestInboundMoves: an S14 whose time changed reschedules (as S13 does);
// an S13 without AIL moves within the appointment's own clinic, its time
// from AIS; a booking made in Signpost (found by its id in SCH-1) moves
// too and takes the PAS's filler id.
func TestInboundMoves(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	nhs, pasNo := nhsNo(1313), "RH8P1313"
	pid := f.registered(nhs, pasNo)
	expectAck(t, f.send(siu("S12", "MV-1", "F-MV", pidOf(nhs, pasNo), clinic, f.SlotStart(0), 15)), "AA")
	expectAck(t, f.send(siu("S14", "MV-2", "F-MV", pidOf(nhs, pasNo), clinic, f.SlotStart(1), 15)), "AA")
	booked := func(filler string) map[string]any {
		t.Helper()
		var out []map[string]any
		for _, a := range f.byFiller(filler) {
			if a["status"] == "booked" {
				out = append(out, a)
			}
		}
		return one(t, "booked "+filler, out)
	}
	if a := booked("F-MV"); !strings.Contains(jsonOf(a["slot"]), "Slot/slot-1") {
		t.Errorf("after S14 with a new time: %v", a["slot"])
	}
	noAIL := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "AIL|") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	expectAck(t, f.send(noAIL(siu("S13", "MV-3", "F-MV", pidOf(nhs, pasNo), clinic, f.SlotStart(2), 15))), "AA")
	if a := booked("F-MV"); !strings.Contains(jsonOf(a["slot"]), "Slot/slot-2") {
		t.Errorf("after S13 without AIL: %v", a["slot"])
	}
	for i, s := range []string{"free", "free", "busy"} {
		if got := f.slotStatus(fmt.Sprintf("slot-%d", i)); got != s {
			t.Errorf("slot-%d is %s, want %s", i, got, s)
		}
	}

	// A booking made in Signpost, moved by the PAS naming it in SCH-1.
	apptest.Seed(t, f.App, map[string]any{"resourceType": "Appointment", "id": "sp-appt", "status": "booked",
		"slot": []any{map[string]any{"reference": "Slot/slot-4"}}, "start": f.SlotStart(4).Format(time.RFC3339), "end": f.SlotStart(5).Format(time.RFC3339),
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + pid}, "status": "accepted"}}})
	msg := strings.Replace(siu("S13", "MV-4", "F-SP", pidOf(nhs, pasNo), clinic, f.SlotStart(5), 15), "SCH||F-SP^PAS", "SCH|sp-appt^SIGNPOST|F-SP^PAS", 1)
	expectAck(t, f.send(msg), "AA")
	if a := booked("F-SP"); !strings.Contains(jsonOf(a["slot"]), "Slot/slot-5") || !strings.Contains(jsonOf(a["extension"]), "Appointment/sp-appt") {
		t.Errorf("the Signpost booking moved by the PAS: %v", a)
	}
	if a := f.Read("Appointment", "sp-appt"); a["status"] != "cancelled" {
		t.Errorf("sp-appt is %v", a["status"])
	}
}

// TestInboundSamples: the codec's real-world message shapes (versions 2.3.1
// and 2.4, escapes, aliases, e-mail in XTN-4) apply as the mapping says.
func TestInboundSamples(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "hl7v2", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	expectAck(t, f.send(read("adt_a04.hl7")), "AA")
	p := one(t, "sample patient", f.storeSearch("Patient", "identifier", referral.NHSNumberSystem+"|9876543210"))
	if !strings.Contains(jsonOf(p["name"]), `"O'BRIEN"`) || !strings.Contains(jsonOf(p["identifier"]), "RH8A200001") || p["gender"] != "male" {
		t.Errorf("after the A04 sample: %v", p)
	}
	ack := f.send(read("adt_a08.hl7"))
	expectAck(t, ack, "AA")
	p = f.Read("Patient", str(p["id"]))
	if tel := jsonOf(p["telecom"]); !strings.Contains(tel, "sean@example.org") || !strings.Contains(tel, `"mobile"`) {
		t.Errorf("telecom after the A08 sample: %s", tel)
	}
	if addr := jsonOf(p["address"]); !strings.Contains(addr, "Flat 1^2") {
		t.Errorf("address after the A08 sample: %s", addr)
	}
	if name := jsonOf(p["name"]); !strings.Contains(name, "SEÁN") {
		t.Errorf("name after the A08 sample: %s", name)
	}
	// The S12 sample books a patient Signpost does not know: AE, 2.5.1's ERR.
	ack = f.send(read("siu_s12.hl7"))
	if ack.Get("MSA-1") != "CE" || ack.Get("ERR-2.1") != "PID" {
		t.Errorf("the S12 sample (enhanced mode AL/NE) was answered\n%s", ack)
	}
}

// TestInboundFollowsReschedules: a PAS message naming, by its placer id
// (SCH-1), an appointment rescheduled in Signpost acts on the appointment
// that replaced it: outbound messages keep the first placer id of a
// reschedule chain (outbound.go).
func TestInboundFollowsReschedules(t *testing.T) {
	f := newFixture(t, pas.ModeSignpostConfirmed, nil)
	first := f.book(0)
	second := f.reschedule(first, 1)
	third := f.reschedule(second, 2)
	expectAck(t, f.send(er7("SIU^S15^SIU_S12", "CHAIN-1", "SCH|"+first+"^SIGNPOST|||||CANC^Patient cancelled")), "AA")
	for id, want := range map[string]string{first: "cancelled", second: "cancelled", third: "cancelled"} {
		if got := str(f.Read("Appointment", id)["status"]); got != want {
			t.Errorf("Appointment/%s is %s, want %s", id, got, want)
		}
	}
	if got := f.slotStatus("slot-2"); got != "free" {
		t.Errorf("slot-2 (the last appointment's) is %s after the PAS cancelled the chain, want free", got)
	}
}
