package gpconnect

import (
	"time"

	"github.com/signpost-fhir/signpost/adapters"
)

// Kind is the adapter kind's name in a configuration file.
const Kind = "gpconnect"

// The defaults a zero setting takes.
const (
	DefaultHorizonDays    = 28
	DefaultPollInterval   = 5 * time.Minute
	DefaultTimeout        = 10 * time.Second
	DefaultPollTimeout    = 30 * time.Second
	DefaultRetryBase      = 30 * time.Second
	DefaultRetryMax       = 30 * time.Minute
	DefaultOrganisationTy = "urgent-care"
)

// Settings are a gpconnect instance's settings (its "settings" object):
// one GP practice's GP Connect Appointment Management endpoint.
//
//	settings:
//	  ods_code: A20047                          # the practice
//	  endpoint: https://gp.example/A20047/STU3/1/gpconnect
//	  consumer_asid: "200000000359"            # Signpost's ASID (Ssp-From)
//	  practice_asid: "918999198738"            # the practice's (Ssp-To)
//	  services: [gp-a20047-appointments]       # Signpost HealthcareServices it stands for
//	  poll_interval: 5m
//	  horizon_days: 28
type Settings struct {
	// ODSCode is the practice's ODS code (its organisation at the
	// endpoint; the poller's searches name it).
	ODSCode string `json:"ods_code" validate:"required,alphanum,max=10"`
	// Endpoint is the practice's GP Connect FHIR base URL (http or https).
	Endpoint string `json:"endpoint" validate:"required,http_url"`
	// ConsumerASID is Signpost's Spine accredited system id (Ssp-From);
	// PracticeASID the practice system's (Ssp-To).
	ConsumerASID string `json:"consumer_asid" validate:"required,numeric,max=20"`
	PracticeASID string `json:"practice_asid" validate:"required,numeric,max=20"`
	// TLS is the mutual-TLS client certificate and key Signpost presents
	// (PEM files), and the CA that verifies the practice's server
	// certificate (the system roots when empty). Optional.
	TLS *TLS `json:"tls"`
	// Services are the ids of the Signpost HealthcareServices the practice
	// stands for: the Schedules copied from the practice are bound to
	// them, and bookings of their slots are booked at the practice first.
	Services []string `json:"services" validate:"required,min=1,dive,required"`
	// Categories maps a practice schedule's service category (its text,
	// or a coding's code) to one of Services; a schedule whose category
	// is not mapped is bound to the first of Services.
	Categories map[string]string `json:"categories" validate:"dive,keys,required,endkeys,required"`
	// OrganisationType is the GP Connect organisation type of the
	// consumer (the searchFilter the practice applies its booking rules
	// to): urgent-care by default.
	OrganisationType string `json:"organisation_type" validate:"omitempty,oneof=urgent-care gp-practice out-of-hours nhs-111 emergency-department ambulance-trust pharmacy community-services other"`
	// PollInterval is how often the practice's free slots are copied;
	// default 5m.
	PollInterval adapters.Duration `json:"poll_interval"`
	// HorizonDays is how many days ahead free slots are copied; default
	// 28, at most 366.
	HorizonDays int `json:"horizon_days" validate:"gte=0,lte=366"`
	// Timeout bounds each booking, amendment or cancellation exchange
	// with the practice (504 beyond it); default 10s. PollTimeout bounds
	// each free-slot search request; default 30s.
	Timeout     adapters.Duration `json:"timeout"`
	PollTimeout adapters.Duration `json:"poll_timeout"`
	// RetryBase and RetryMax space the polls after a failed one and the
	// retries of messages to the practice (exponential back-off);
	// defaults 30s and 30m.
	RetryBase adapters.Duration `json:"retry_base"`
	RetryMax  adapters.Duration `json:"retry_max"`
	// MaxAttempts moves a cancellation or amendment still failing after
	// so many attempts to the dead letters; 0 retries until the practice
	// refuses it.
	MaxAttempts int `json:"max_attempts" validate:"gte=0"`
	// TemporaryPatients: the practice accepts patients not registered
	// with it (temporary residents): a booking for one is made for the
	// patient as Signpost knows them instead of being refused.
	TemporaryPatients bool `json:"temporary_patients"`
	// ContactTelephone is the telephone number given for the booking
	// organisation (GP Connect requires one) when Signpost's directory
	// has none for the organisation of the user who books.
	ContactTelephone string `json:"contact_telephone" validate:"omitempty,max=40"`
	// ConsumerURL is Signpost's system URL in the JWT (iss,
	// requesting_device); default the server's base URL.
	ConsumerURL string `json:"consumer_url" validate:"omitempty,url"`
}

// TLS is the instance's mutual-TLS material (PEM files).
type TLS struct {
	Cert string `json:"cert" validate:"required"`
	Key  string `json:"key" validate:"required"`
	// CA verifies the practice's server certificate; the system roots
	// when empty.
	CA string `json:"ca"`
}

// withDefaults fills the settings left empty.
func (s Settings) withDefaults(env adapters.Env) Settings {
	if s.HorizonDays == 0 {
		s.HorizonDays = DefaultHorizonDays
	}
	if s.OrganisationType == "" {
		s.OrganisationType = DefaultOrganisationTy
	}
	if s.ConsumerURL == "" {
		s.ConsumerURL = env.BaseURL
	}
	if s.ConsumerURL == "" {
		s.ConsumerURL = "https://signpost.example/fhir"
	}
	return s
}
