// Everything but the optional JSON codec (json_codec.h).
#pragma once

#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/backend.h"
#include "dynamodb_cache/cache.h"
#include "dynamodb_cache/dynamodb.h"
#include "dynamodb_cache/dynamodb_backend.h"
#include "dynamodb_cache/errors.h"
#include "dynamodb_cache/http.h"
#include "dynamodb_cache/layered_backend.h"
#include "dynamodb_cache/log.h"
#include "dynamodb_cache/make_cache.h"
#include "dynamodb_cache/memory_backend.h"
#include "dynamodb_cache/near_cache.h"
#include "dynamodb_cache/outcome.h"
#include "dynamodb_cache/table.h"
