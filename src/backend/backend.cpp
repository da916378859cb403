#include "backend/backend.h"

namespace frugal::backend {

#ifndef FRUGAL_HAVE_CUDA
Expected<Backend*> cuda_backend() {
  return unsupported("this build of frugal has no CUDA backend (configure with -DFRUGAL_CUDA=ON and nvcc)");
}
bool cuda_compiled() { return false; }
#endif

}  // namespace frugal::backend
