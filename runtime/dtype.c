/* dtype.c: the runtime's table of dtypes, generated from KILN_DTYPES (kiln_dtype.h) as the compiler's is. */
#include "runtime/kiln_rt.h"

const KilnDTypeInfo rt_dtypes[RT_DTYPE_COUNT] = {KILN_DTYPES(KILN_DTYPE_INFO)};
