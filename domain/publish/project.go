package publish

// The projections: what of a Location, a Schedule and a Slot is published,
// in the shapes the SMART Scheduling Links specification gives.

import (
	"encoding/json"
	"net/url"

	"github.com/signpost-fhir/signpost/fhir"
)

// identifier is an Identifier.
type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// publishedLocation is a Location File line.
type publishedLocation struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Identifier   []identifier    `json:"identifier"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	Telecom      []contact       `json:"telecom"`
	Address      json.RawMessage `json:"address,omitempty"`
	Position     json.RawMessage `json:"position,omitempty"`
}

// location projects a stored Location. Its telecom falls back to the phone
// of a service there; its identifiers are its own plus Signpost's id of it.
func (s *Service) location(r *fhir.Resource, services []*service) publishedLocation {
	var l struct {
		Identifier  []identifier    `json:"identifier"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Telecom     []contact       `json:"telecom"`
		Address     json.RawMessage `json:"address"`
		Position    json.RawMessage `json:"position"`
	}
	_ = json.Unmarshal(r.JSON, &l)
	out := publishedLocation{ResourceType: "Location", ID: r.ID, Name: l.Name, Description: l.Description,
		Address: l.Address, Position: l.Position}
	for _, id := range l.Identifier {
		if id.Value != "" {
			out.Identifier = append(out.Identifier, id)
		}
	}
	out.Identifier = append(out.Identifier, identifier{System: s.cfg.BaseURL + "/Location", Value: r.ID})
	for _, c := range l.Telecom {
		if (c.System == "phone" || c.System == "url") && c.Value != "" {
			out.Telecom = append(out.Telecom, contact{System: c.System, Value: c.Value})
		}
	}
	if phoneOf(out.Telecom) == "" {
		for _, sv := range services {
			if sv.Phone != "" {
				out.Telecom = append(out.Telecom, contact{System: "phone", Value: sv.Phone})
				break
			}
		}
	}
	if out.Telecom == nil {
		out.Telecom = []contact{}
	}
	if out.Name == "" && len(services) > 0 {
		out.Name = services[0].Name
	}
	return out
}

// publishedSchedule is a Schedule File line.
type publishedSchedule struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	ServiceType  []json.RawMessage `json:"serviceType"`
	Specialty    []json.RawMessage `json:"specialty,omitempty"`
	Actor        []ref             `json:"actor"`
}

// schedule projects a published schedule: at its Location, offering its
// service: the service's type codings (the HL7 service-type system the
// specification names), or, for a service without a type, its specialty's
// (SNOMED CT) codings, with the service's name as text.
func (s *Service) schedule(sc *schedule) publishedSchedule {
	codings := codingsOf(sc.Service.Type)
	if len(codings) == 0 {
		codings = codingsOf(sc.Service.Specialty)
	}
	st, _ := json.Marshal(struct {
		Coding []json.RawMessage `json:"coding,omitempty"`
		Text   string            `json:"text,omitempty"`
	}{codings, sc.Service.Name})
	return publishedSchedule{ResourceType: "Schedule", ID: sc.ID, ServiceType: []json.RawMessage{st},
		Specialty: sc.Service.Specialty, Actor: []ref{{Reference: "Location/" + sc.Location}}}
}

// extension is a Slot extension of the specification.
type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl,omitempty"`
	ValueString string `json:"valueString,omitempty"`
}

// publishedSlot is a Slot File line.
type publishedSlot struct {
	ResourceType string      `json:"resourceType"`
	ID           string      `json:"id"`
	Schedule     ref         `json:"schedule"`
	Status       string      `json:"status"`
	Start        string      `json:"start"`
	End          string      `json:"end"`
	Extension    []extension `json:"extension,omitempty"`
}

// slot projects a stored Slot of sc: free or busy (any busy status), with
// the booking deep link and phone when free. A slot entered in error, or
// without its times, is not published.
func (s *Service) slot(r *fhir.Resource, sc *schedule) (publishedSlot, bool) {
	var sl struct {
		Status string `json:"status"`
		Start  string `json:"start"`
		End    string `json:"end"`
	}
	if json.Unmarshal(r.JSON, &sl) != nil || sl.Start == "" || sl.End == "" {
		return publishedSlot{}, false
	}
	out := publishedSlot{ResourceType: "Slot", ID: r.ID, Schedule: ref{Reference: "Schedule/" + sc.ID}, Start: sl.Start, End: sl.End}
	switch sl.Status {
	case "free":
		out.Status = "free"
		out.Extension = append(out.Extension, extension{URL: BookingDeepLink, ValueURL: s.root() + "/book?slot=" + url.QueryEscape(r.ID)})
		if sc.Service.Phone != "" {
			out.Extension = append(out.Extension, extension{URL: BookingPhone, ValueString: sc.Service.Phone})
		}
	case "busy", "busy-unavailable", "busy-tentative":
		out.Status = "busy"
	default:
		return publishedSlot{}, false
	}
	return out, true
}

// codingsOf returns the codings of CodeableConcepts.
func codingsOf(ccs []json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for _, t := range ccs {
		var cc struct {
			Coding []json.RawMessage `json:"coding"`
		}
		if json.Unmarshal(t, &cc) == nil {
			out = append(out, cc.Coding...)
		}
	}
	return out
}
