#include "runtime/kiln_rt.h"
