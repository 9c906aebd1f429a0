// The table of deployable formats (see exporter.h).
#include "deploy/exporter.h"

namespace edgequant::deploy {

const Exporter* find_exporter(ExportFormat format) {
  for (const Exporter* e : {&espdl_exporter(), &qdq_exporter(), &ti_onnx_exporter(), &tflite_exporter()})
    if (e->format() == format) return e;
  return nullptr;
}

}  // namespace edgequant::deploy
