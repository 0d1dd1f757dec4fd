/* onnx_pack.h: the bytes of an ONNX model around a graph, for the unit tests that write their own
 * ONNX files (test_onnx.c, test_onnx_qmatmul.c). */
#ifndef KILN_TEST_ONNX_PACK_H
#define KILN_TEST_ONNX_PACK_H

#include "onnx.pb-c.h"

#include <stdint.h>
#include <stdlib.h>

/* g in a model of IR version 7 importing the given opset of the default domain, packed (malloc'ed;
 * NULL when out of memory or when protobuf-c packs another size than it said). */
static inline uint8_t *onnx_pack_opset(Onnx__GraphProto *g, size_t *len, int opset)
{
    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    os.domain = "", os.has_version = 1, os.version = opset;
    Onnx__OperatorSetIdProto *oss[1] = {&os};
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1, m.ir_version = 7, m.n_opset_import = 1, m.opset_import = oss, m.graph = g;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf && onnx__model_proto__pack(&m, buf) != *len) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* g at opset 13 */
static inline uint8_t *onnx_pack(Onnx__GraphProto *g, size_t *len)
{
    return onnx_pack_opset(g, len, 13);
}

#endif
