// A CPU allocator for LibTorch that keeps freed large buffers for reuse. Every batch allocates
// the same activation sizes; glibc serves blocks above 32 MiB with fresh mmap'ed pages each
// time, and zeroing those pages dominated calibration profiles. Installed once per process by
// the executor; small blocks go straight to the default allocator.
#pragma once

namespace edgequant::exec {

void install_buffer_cache();

}  // namespace edgequant::exec
