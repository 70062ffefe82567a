package conformance

import "encoding/json"

// OperationDefinition returns Signpost's own OperationDefinition with id
// (among Definitions("OperationDefinition")), or nil: the definition an
// operation is registered with.
func OperationDefinition(id string) json.RawMessage {
	for _, raw := range Definitions("OperationDefinition") {
		var head struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &head) == nil && head.ID == id {
			return raw
		}
	}
	return nil
}
