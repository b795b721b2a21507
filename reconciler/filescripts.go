package reconciler

import _ "embed"

// The scripts of files and services, run inside containers as named scripts.
var (
	// FileScript is phoenix/file: the guest's side of Node.WriteFile.
	//go:embed file.sh
	FileScript string
	// InspectScript is phoenix/inspect: the files' digests and the
	// services' states, as they are.
	//go:embed inspect.sh
	InspectScript string
	// ServiceScript is phoenix/service: one service brought to its wanted
	// state.
	//go:embed service.sh
	ServiceScript string
)
