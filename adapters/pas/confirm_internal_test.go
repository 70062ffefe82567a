package pas

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/signpost-fhir/signpost/adapters"
	"github.com/signpost-fhir/signpost/adapters/hl7v2"
	"github.com/signpost-fhir/signpost/fhir"
)

// TestReadAnswer: only an AA echoing the request's control id accepts a
// booking, and an SRR's SCH-2 is the PAS's filler id; anything else is
// 502 PAS_RESPONDED_WITH_ERROR with what the PAS said.
func TestReadAnswer(t *testing.T) {
	req, err := hl7v2.Parse([]byte("MSH|^~\\&|SIGNPOST|R9901|PAS|R9901|20261206120000||SRM^S01^SRM_S01|REQ1|P|2.5.1\rARQ|A1^SIGNPOST"))
	if err != nil {
		t.Fatal(err)
	}
	a := &Adapter{env: adapters.Env{Now: time.Now, Logger: slog.New(slog.DiscardHandler)}}
	head := "MSH|^~\\&|PAS|R9901|SIGNPOST|R9901|20261206120001||"
	for _, c := range []struct {
		name, answer string
		accepted     bool
		filler, text string // the filler id; a text the error must carry
	}{
		{"SRR with the filler id", head + "SRR^S01^SRR_S01|A9|P|2.5.1\rMSA|AA|REQ1\rSCH|A1^SIGNPOST|F-77^PAS", true, "F-77", ""},
		{"application ACK", head + "ACK^S01^ACK|A9|P|2.5.1\rMSA|AA|REQ1", true, "", ""},
		{"AE with ERR", head + "ACK^S01^ACK|A9|P|2.5.1\rMSA|AE|REQ1\rERR||SCH^1|207^Application internal error^HL70357|E||||clinic closed", false, "", "clinic closed"},
		{"AR with text", head + "ACK^S01^ACK|A9|P|2.5.1\rMSA|AR|REQ1|slot unknown", false, "", "AR (slot unknown)"},
		{"commit accept only", head + "ACK^S01^ACK|A9|P|2.5.1\rMSA|CA|REQ1", false, "", "CA"},
		{"another request's answer", head + "ACK^S01^ACK|A9|P|2.5.1\rMSA|AA|REQ2", false, "", "REQ2"},
		{"no MSA", head + "ACK^S01^ACK|A9|P|2.5.1", false, "", "no MSA"},
		{"not HL7", "hello", false, "", "cannot be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := a.readAnswer(req, []byte(c.answer))
			if got.accepted != c.accepted || got.filler != c.filler {
				t.Fatalf("accepted %v filler %q (%v), want %v %q", got.accepted, got.filler, got.err, c.accepted, c.filler)
			}
			if c.accepted {
				return
			}
			e := fhir.AsError(got.err)
			if e.Kind != fhir.BadGateway || len(e.Issues) != 1 || e.Issues[0].Details != ErrPASRespondedWithError || !strings.Contains(e.Issues[0].Diagnostics, c.text) {
				t.Errorf("error %v, want 502 %s saying %q", got.err, ErrPASRespondedWithError, c.text)
			}
		})
	}
}
