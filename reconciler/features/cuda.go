package features

import "strings"

// cudaMinDrivers are the oldest NVIDIA drivers a CUDA major release runs on
// (NVIDIA's CUDA Toolkit release notes, table of toolkit driver versions):
// 13.x needs the 580 branch (>= 580.65.06, 13.0 GA); 12.x runs on >= 525.60.13
// through minor version compatibility (with reduced features below the
// release's own GA driver, e.g. 570.26 for 12.8); 11.x on >= 450.80.02.
var cudaMinDrivers = map[string]string{
	"11": "450.80.02",
	"12": "525.60.13",
	"13": "580.65.06",
}

// CUDAMinDriver is the oldest NVIDIA driver CUDA version MAJOR.MINOR runs
// on, or "" for a major release phoenix does not know.
func CUDAMinDriver(version string) string {
	major, _, _ := strings.Cut(version, ".")
	return cudaMinDrivers[major]
}
