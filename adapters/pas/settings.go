package pas

import "github.com/signpost-fhir/signpost/adapters"

// Kind is the adapter kind's name in a configuration file.
const Kind = "hl7v2-pas"

// The modes of an instance: who confirms a booking of the PAS's slots.
const (
	// ModeSignpostConfirmed: Signpost is the booking system of record for
	// the instance's schedules; bookings, reschedules and cancellations
	// made in Signpost are confirmed at once and go to the PAS as
	// SIU^S12/S13/S15 through the outbox (the notify profile).
	ModeSignpostConfirmed = "signpost-confirmed"
	// ModePASConfirmed: the PAS is the system of record; Signpost asks it
	// with SRM^S01/S03/S04 and confirms a booking only when the PAS
	// accepts it (the request profile).
	ModePASConfirmed = "pas-confirmed"
)

// Settings are an hl7v2-pas instance's settings (its "settings" object).
//
//	settings:
//	  listen: 127.0.0.1:2575          # MLLP listener for the PAS's messages
//	  allow: [127.0.0.1, 10.1.2.3]    # peers that may connect
//	  send: pas.example:2576          # the PAS's MLLP listener
//	  services: [rh8-cardiology]      # HealthcareService ids whose schedules the PAS owns
//	  pas_number_system: https://harbour.example/Id/pas-number
//	  mode: pas-confirmed
type Settings struct {
	// Listen is the MLLP listen address (host:port) for messages from the
	// PAS; "" receives none. Bind a loopback address unless the PAS is
	// elsewhere.
	Listen string `json:"listen" validate:"omitempty,hostport"`
	// Allow lists the peer addresses or CIDR ranges that may connect to
	// Listen. Required with Listen.
	Allow []string `json:"allow" validate:"required_with=Listen,dive,required"`
	// Send is the PAS's MLLP address (host:port) for Signpost's messages;
	// "" sends none.
	Send string `json:"send" validate:"omitempty,hostport"`
	// TLS secures both directions when set.
	TLS *TLS `json:"tls"`
	// Services are the ids of the HealthcareServices whose schedules the
	// PAS owns: its messages may touch only their schedules, slots and
	// appointments, and changes to those are sent to it.
	Services []string `json:"services" validate:"required,min=1,dive,required"`
	// Clinics maps the PAS's clinic codes (AIL-3, the slot feed's
	// "clinic") to Schedule ids.
	Clinics map[string]string `json:"clinics" validate:"dive,keys,required,endkeys,required"`
	// PASNumberSystem is the identifier system of the PAS's patient
	// numbers (PID-3 entries that are not the NHS number).
	PASNumberSystem string `json:"pas_number_system" validate:"required,url"`
	// Mode is signpost-confirmed or pas-confirmed.
	Mode string `json:"mode" validate:"required,oneof=signpost-confirmed pas-confirmed"`
	// Application and Facility are Signpost's MSH-3 and MSH-4 in the
	// messages it sends; PASApplication and PASFacility the PAS's (MSH-5,
	// MSH-6). Defaults: SIGNPOST, the instance's ODS code, PAS, the ODS code.
	Application    string `json:"application"`
	Facility       string `json:"facility"`
	PASApplication string `json:"pas_application"`
	PASFacility    string `json:"pas_facility"`
	// Version is the HL7 v2 version Signpost's messages declare (MSH-12);
	// default 2.5.1.
	Version string `json:"version" validate:"omitempty,oneof=2.3 2.3.1 2.4 2.5 2.5.1"`
	// AckTimeout bounds the wait for the PAS's acknowledgement; default
	// 30s. ConfirmTimeout bounds a pas-confirmed booking's wait for the
	// PAS's answer before 504; default 10s.
	AckTimeout     adapters.Duration `json:"ack_timeout"`
	ConfirmTimeout adapters.Duration `json:"confirm_timeout"`
	// MaxAttempts moves a message that still fails after so many attempts
	// to the dead letters; 0 retries until an AR.
	MaxAttempts int `json:"max_attempts" validate:"gte=0"`
	// RetryBase and RetryMax space the retries (exponential back-off);
	// defaults 1s and 5m.
	RetryBase adapters.Duration `json:"retry_base"`
	RetryMax  adapters.Duration `json:"retry_max"`
	// PollInterval is how often the dispatcher looks for messages due
	// when nothing wakes it (a commit or a replay wakes it at once);
	// default 5s.
	PollInterval adapters.Duration `json:"poll_interval"`
}

// TLS is the instance's TLS material (PEM files).
type TLS struct {
	Cert string `json:"cert" validate:"required_with=Key"`
	Key  string `json:"key" validate:"required_with=Cert"`
	// CA verifies the peer: the PAS's server certificate when sending,
	// and, on the listener, requires and verifies client certificates.
	CA string `json:"ca"`
}
