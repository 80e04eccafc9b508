#include "gateway/adapter.h"

#include <string.h>

#include "adapters/mqtt/mqtt.h"
#include "adapters/rest/rest.h"

const struct sl_adapter_ops *const sl_adapter_kinds[] = {
    &rest_adapter_ops,
    &mqtt_adapter_ops,
    NULL,
};

const struct sl_adapter_ops *sl_adapter_kind(const char *name)
{
    for (size_t i = 0; sl_adapter_kinds[i] != NULL; i++) {
        if (strcmp(sl_adapter_kinds[i]->name, name) == 0) {
            return sl_adapter_kinds[i];
        }
    }
    return NULL;
}
