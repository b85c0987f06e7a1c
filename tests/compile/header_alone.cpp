// Compiled with -fsyntax-only and strict warnings by compile_headers.sh: the umbrella header must
// stand alone, with nothing included before it and no flags beyond the include roots.
#include <keel/keel.hpp>
