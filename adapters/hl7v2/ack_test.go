package hl7v2

import (
	"strings"
	"testing"
	"time"
)

func TestBuildAck(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 15, 0, 0, time.UTC)
	pidMissing := &Issue{Location: Path{Segment: "PID", SegRep: 1, Field: 3}, Code: CodeRequiredMissing, Text: "no NHS number in PID-3"}
	tests := []struct {
		name string
		file string
		ack  Ack
		want string // the whole ACK, segments on lines
	}{
		{
			name: "original mode accept",
			file: "adt_a04.hl7",
			ack:  Ack{Outcome: OutcomeAccept, ControlID: "ACK1", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A04^ACK|ACK1|P|2.3.1\n" +
				"MSA|AA|A04-55501\n",
		},
		{
			name: "original mode, commit asked: still AA",
			file: "adt_a04.hl7",
			ack:  Ack{Outcome: OutcomeAccept, Commit: true, ControlID: "ACK1", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A04^ACK|ACK1|P|2.3.1\n" +
				"MSA|AA|A04-55501\n",
		},
		{
			name: "v2.3.1 error also carries ERR-1",
			file: "adt_a04.hl7",
			ack:  Ack{Outcome: OutcomeError, Text: "cannot apply", Issues: []*Issue{pidMissing}, ControlID: "ACK2", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A04^ACK|ACK2|P|2.3.1\n" +
				"MSA|AE|A04-55501|cannot apply\n" +
				"ERR|PID^1^3^101&Required field missing&HL70357|PID^1^3|101^Required field missing^HL70357|E||||no NHS number in PID-3\n",
		},
		{
			name: "enhanced mode commit reject, v2.5.1, two issues",
			file: "siu_s12.hl7",
			ack: Ack{Outcome: OutcomeReject, Commit: true, ControlID: "ACK3", Time: at, Issues: []*Issue{
				{Location: Path{Segment: "SCH", SegRep: 1, Field: 11, Rep: 1, Comp: 4}, Code: CodeDataType, Text: "start | end ^ bad"},
				{Code: CodeInternal, Severity: SeverityWarning, Text: "store busy"},
			}},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|CAREFLOW|RH8|20261207091500+0000||ACK^S12^ACK|ACK3|P|2.5.1\n" +
				"MSA|CR|RH8-000123\n" +
				"ERR||SCH^1^11^1^4|102^Data type error^HL70357|E||||start \\F\\ end \\S\\ bad\n" +
				"ERR|||207^Application internal error^HL70357|W||||store busy\n",
		},
		{
			name: "enhanced mode application accept",
			file: "adt_a40.hl7",
			ack:  Ack{Outcome: OutcomeAccept, ControlID: "ACK4", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A40^ACK|ACK4|P|2.5\n" +
				"MSA|AA|A40-55503\n",
		},
		{
			name: "enhanced mode commit accept",
			file: "adt_a40.hl7",
			ack:  Ack{Outcome: OutcomeAccept, Commit: true, ControlID: "ACK7", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A40^ACK|ACK7|P|2.5\n" +
				"MSA|CA|A40-55503\n",
		},
		{
			name: "enhanced mode commit error",
			file: "adt_a40.hl7",
			ack:  Ack{Outcome: OutcomeError, Commit: true, ControlID: "ACK5", Time: at},
			want: "MSH|^~\\&|SIGNPOST|SIGNPOST|PAS|RH8|20261207091500+0000||ACK^A40^ACK|ACK5|P|2.5\n" +
				"MSA|CE|A40-55503\n",
		},
		{
			name: "odd separators kept",
			file: "odd_separators.hl7",
			ack:  Ack{Outcome: OutcomeAccept, ControlID: "ACK6", Time: at, Text: "ok#done"},
			want: "MSH#$%*@#SIGNPOST#SIGNPOST#PAS#RH8#20261207091500+0000##ACK$A08$ACK#ACK6#P#2.3\n" +
				"MSA#AA#ODD-1#ok*F*done\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := mustParse(t, sample(t, tt.file))
			ack, err := BuildAck(msg, tt.ack)
			if err != nil {
				t.Fatal(err)
			}
			if got := ack.String(); got != tt.want {
				t.Errorf("BuildAck:\n got %q\nwant %q", got, tt.want)
			}
			back := mustParse(t, ack.Encode())
			if err := back.CheckHeader(); err != nil {
				t.Errorf("the ACK's own header: %v", err)
			}
		})
	}
}

func TestBuildAckControlID(t *testing.T) {
	msg := mustParse(t, sample(t, "siu_s15.hl7"))
	a1, _ := BuildAck(msg, Ack{})
	a2, _ := BuildAck(msg, Ack{})
	id1, id2 := a1.ControlID(), a2.ControlID()
	if len(id1) != 20 || id1 == id2 || id1 == msg.ControlID() {
		t.Errorf("control ids %q and %q: want two new 20-character ids", id1, id2)
	}
	if got := a1.Get("MSA-2"); got != "RH8-000124" {
		t.Errorf("MSA-2 = %q", got)
	}
	if _, err := time.Parse("20060102150405-0700", a1.Get("MSH-7")); err != nil {
		t.Errorf("MSH-7 %q: %v", a1.Get("MSH-7"), err)
	}
	if !strings.HasPrefix(a1.Get("MSH-7"), time.Now().Format("2006")) {
		t.Errorf("MSH-7 %q is not now", a1.Get("MSH-7"))
	}
}

func TestWantsAck(t *testing.T) {
	tests := []struct {
		msh15, msh16 string
		commit       bool
		o            Outcome
		want         bool
	}{
		{"", "", false, OutcomeAccept, true},
		{"", "", true, OutcomeReject, true},
		{"AL", "NE", true, OutcomeAccept, true},
		{"AL", "NE", false, OutcomeAccept, false},
		{"NE", "AL", true, OutcomeError, false},
		{"ER", "", true, OutcomeAccept, false},
		{"ER", "", true, OutcomeError, true},
		{"", "SU", false, OutcomeAccept, true},
		{"", "SU", false, OutcomeReject, false},
		{"SU", "", false, OutcomeReject, true},
	}
	for _, tt := range tests {
		m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|2026||ADT^A08|1|P|2.5|||"+tt.msh15+"|"+tt.msh16))
		if got := m.WantsAck(tt.commit, tt.o); got != tt.want {
			t.Errorf("MSH-15 %q MSH-16 %q commit %v outcome %d: WantsAck = %v, want %v", tt.msh15, tt.msh16, tt.commit, tt.o, got, tt.want)
		}
	}
}
