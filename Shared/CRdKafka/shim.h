#ifndef BATON_CRDKAFKA_SHIM_H
#define BATON_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif
