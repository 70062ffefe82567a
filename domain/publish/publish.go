// Package publish publishes Signpost's bookable availability as SMART
// Scheduling Links (the Slot Publisher API): a public, read-only
// $bulk-publish manifest and NDJSON files of Location, Schedule and Slot, so
// that aggregators and patient apps can show availability across providers.
//
// Only services published as bookable appear: HealthcareServices that are
// directly bookable (characteristic
// https://signpost.example/fhir/CodeSystem/bookability|directly-bookable)
// and not inactive, through their active Schedules. What is published is a
// projection built for the purpose, never a stored resource passed on:
//
//   - Location: id, identifier, name, description, telecom, address,
//     position — a Location of a published service;
//   - Schedule: id, actor (the service's Location, as the specification
//     requires), serviceType (the service's type codings, or without a type
//     its specialty's, with its name as text) and specialty;
//   - Slot: id, schedule, status (free, or busy for any busy status), start,
//     end, and for free slots the booking-deep-link extension (Signpost's
//     portal, <public root>/book?slot=<id>) and booking-phone (the
//     service's phone).
//
// Slots carry no patient data by construction. Past slots are left out.
//
// The manifest and the files are computed from the store when asked, file
// by file (a Slot file covers a few schedules, read a page at a time), so no
// request holds the region in memory. A _since instant on the manifest is
// carried into every file URL, and each file then holds only what changed
// since: the resources updated since, and everything of a service or
// schedule that changed since. Every answer has an ETag (a digest of the
// body) and Last-Modified, honours If-None-Match and If-Modified-Since, and
// says Cache-Control: max-age as the polling interval.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// The SMART Scheduling Links extensions and code systems.
const (
	BookingDeepLink = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link"
	BookingPhone    = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-phone"
	ServiceTypes    = "http://terminology.hl7.org/CodeSystem/service-type"

	bookabilitySystem = "https://signpost.example/fhir/CodeSystem/bookability"
	directlyBookable  = "directly-bookable"
)

// Config configures publishing.
type Config struct {
	BaseURL string // the public FHIR base (…/fhir); the portal is at its root
	// MaxAge is the polling interval announced in Cache-Control; default 5
	// minutes.
	MaxAge time.Duration
	// SchedulesPerFile is how many schedules' slots one Slot file holds;
	// default 25. PerFile is how many Locations or Schedules one file
	// holds; default 1000.
	SchedulesPerFile int
	PerFile          int
	Now              func() time.Time // default time.Now
}

// Service answers $bulk-publish and its files.
type Service struct {
	cfg Config
	st  store.Reader

	mu     sync.Mutex
	cached *catalogue // the catalogue last read, while no service or schedule changes
	key    string     // the newest service and schedule versions it was read at
	at     time.Time  // when it was read
}

// maxCatalogueAge bounds how long a catalogue is reused even when the
// newest versions look unchanged (a backend whose history orders writes of
// the same instant loosely).
const maxCatalogueAge = 15 * time.Second

// New returns the publishing service reading repo's store.
func New(cfg Config, repo *write.Path) *Service {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * time.Minute
	}
	if cfg.SchedulesPerFile <= 0 {
		cfg.SchedulesPerFile = 25
	}
	if cfg.PerFile <= 0 {
		cfg.PerFile = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Service{cfg: cfg, st: repo.Store()}
}

// service is what publishing needs of a published HealthcareService.
type service struct {
	ID        string
	Name      string
	Locations []string
	Phone     string
	Type      []json.RawMessage // CodeableConcepts
	Specialty []json.RawMessage
	Updated   time.Time
}

// schedule is a published Schedule: its service and its Location.
type schedule struct {
	ID       string
	Service  *service
	Location string
	Updated  time.Time
}

// catalogue is the published services and schedules, sorted by id, and the
// Locations they use (sorted).
type catalogue struct {
	schedules []*schedule
	locations []string
	services  map[string]*service
	updated   time.Time // the latest update among them
}

// pageSize is how many resources a read of the store takes at a time.
const pageSize = 500

// each runs fn on every current resource of q's type matching its filter,
// a page at a time.
func (s *Service) each(ctx context.Context, q *search.Query, fn func(*fhir.Resource) error) error {
	q.Count = pageSize
	for {
		page, err := s.st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range page.Resources {
			if r.Deleted {
				continue
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// load returns the catalogue: the directly bookable, active services and
// their active schedules. It is read again only when a service or a
// schedule has changed (a new newest version of either type), so the many
// file requests of one manifest share one reading.
func (s *Service) load(ctx context.Context) (*catalogue, error) {
	var key strings.Builder
	for _, typ := range []string{"HealthcareService", "Schedule"} {
		h, err := s.st.History(ctx, store.HistoryQuery{Type: typ, Count: 1})
		if err != nil {
			return nil, err
		}
		for _, v := range h.Versions {
			fmt.Fprintf(&key, "%s/%s/%d/%d;", v.Type, v.ID, v.Version, v.LastUpdated.UnixMicro())
		}
	}
	s.mu.Lock()
	if s.cached != nil && s.key == key.String() && s.cfg.Now().Sub(s.at) < maxCatalogueAge {
		c := s.cached
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	c, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached, s.key, s.at = c, key.String(), s.cfg.Now()
	s.mu.Unlock()
	return c, nil
}

// read reads the catalogue from the store. The catalogue it returns is
// shared afterwards: nothing changes it.
func (s *Service) read(ctx context.Context) (*catalogue, error) {
	c := &catalogue{services: map[string]*service{}}
	q := &search.Query{Type: "HealthcareService", Filter: []search.Expr{
		search.TokenIn{Param: "bookability", System: bookabilitySystem, HasSystem: true, Codes: []string{directlyBookable}}}}
	err := s.each(ctx, q, func(r *fhir.Resource) error {
		var hs struct {
			Active    *bool  `json:"active"`
			Name      string `json:"name"`
			Location  []ref  `json:"location"`
			Telecom   []contact
			Type      []json.RawMessage `json:"type"`
			Specialty []json.RawMessage `json:"specialty"`
		}
		if json.Unmarshal(r.JSON, &hs) != nil || hs.Active != nil && !*hs.Active {
			return nil
		}
		sv := &service{ID: r.ID, Name: hs.Name, Phone: phoneOf(hs.Telecom), Type: hs.Type, Specialty: hs.Specialty, Updated: r.LastUpdated}
		for _, l := range hs.Location {
			if id, ok := strings.CutPrefix(l.Reference, "Location/"); ok && fhir.ValidID(id) {
				sv.Locations = append(sv.Locations, id)
			}
		}
		c.services[r.ID] = sv
		c.updated = later(c.updated, r.LastUpdated)
		return nil
	})
	if err != nil {
		return nil, err
	}
	locs := map[string]bool{}
	err = s.each(ctx, &search.Query{Type: "Schedule"}, func(r *fhir.Resource) error {
		var sc struct {
			Active *bool `json:"active"`
			Actor  []ref `json:"actor"`
		}
		if json.Unmarshal(r.JSON, &sc) != nil || sc.Active != nil && !*sc.Active {
			return nil
		}
		var sv *service
		var loc string
		for _, a := range sc.Actor {
			if id, ok := strings.CutPrefix(a.Reference, "HealthcareService/"); ok && sv == nil {
				sv = c.services[id]
			}
			if id, ok := strings.CutPrefix(a.Reference, "Location/"); ok && loc == "" && fhir.ValidID(id) {
				loc = id
			}
		}
		if sv == nil {
			return nil
		}
		if loc == "" && len(sv.Locations) > 0 {
			loc = sv.Locations[0]
		}
		if loc == "" {
			return nil // the specification places every schedule at a Location
		}
		c.schedules = append(c.schedules, &schedule{ID: r.ID, Service: sv, Location: loc, Updated: r.LastUpdated})
		locs[loc] = true
		c.updated = later(c.updated, r.LastUpdated)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(c.schedules, func(a, b *schedule) int { return strings.Compare(a.ID, b.ID) })
	for id := range locs {
		c.locations = append(c.locations, id)
	}
	slices.Sort(c.locations)
	return c, nil
}

// ref is a Reference.
type ref struct {
	Reference string `json:"reference"`
}

// contact is a ContactPoint.
type contact struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
	Use    string `json:"use,omitempty"`
}

// phoneOf returns the first phone number among cs.
func phoneOf(cs []contact) string {
	for _, c := range cs {
		if c.System == "phone" && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// etag returns a strong entity tag for body.
func etag(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// root is the public base without /fhir: where the portal is.
func (s *Service) root() string { return strings.TrimSuffix(s.cfg.BaseURL, "/fhir") }

// fileURL is the URL of one file.
func (s *Service) fileURL(typ, from, to string, since time.Time) string {
	v := url.Values{"type": {typ}, "from": {from}, "to": {to}}
	if !since.IsZero() {
		v.Set("_since", since.UTC().Format(fhir.InstantFormat))
	}
	return s.cfg.BaseURL + "/$bulk-publish-file?" + v.Encode()
}
