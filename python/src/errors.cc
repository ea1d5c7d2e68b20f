// C++ errors (errors.h) as the exceptions of dynamodb_cache.errors, one Python class per C++
// class, with the kind and retryable of every error and the fields of ServiceError and
// TransportError.
#include "dynamodb_cache/errors.h"

#include <pybind11/pybind11.h>

#include <string>

#include "native.h"

namespace dynamodb_cache::python {

namespace {

// The Python class name of a C++ error: the most derived class of errors.h it is.
const char* class_name(const Error& e) {
  if (dynamic_cast<const InvalidArgumentError*>(&e)) return "InvalidArgumentError";
  if (dynamic_cast<const CodecError*>(&e)) return "CodecError";
  if (dynamic_cast<const ConfigError*>(&e)) return "ConfigError";
  if (dynamic_cast<const CredentialsError*>(&e)) return "CredentialsError";
  if (dynamic_cast<const WrongTypeError*>(&e)) return "WrongTypeError";
  // Subclasses before their bases: a CertificateError is a TransportError too.
  if (dynamic_cast<const ConnectError*>(&e)) return "ConnectError";
  if (dynamic_cast<const TimeoutError*>(&e)) return "TimeoutError";
  if (dynamic_cast<const CertificateError*>(&e)) return "CertificateError";
  if (dynamic_cast<const TransportError*>(&e)) return "TransportError";
  if (dynamic_cast<const ProtocolError*>(&e)) return "ProtocolError";
  if (dynamic_cast<const ResourceNotFoundError*>(&e)) return "ResourceNotFoundError";
  if (dynamic_cast<const ThrottlingError*>(&e)) return "ThrottlingError";
  if (dynamic_cast<const ConditionFailedError*>(&e)) return "ConditionFailedError";
  if (dynamic_cast<const ServiceError*>(&e)) return "ServiceError";
  if (dynamic_cast<const UnknownOutcomeError*>(&e)) return "UnknownOutcomeError";
  if (dynamic_cast<const CancelledError*>(&e)) return "CancelledError";
  if (dynamic_cast<const OverloadedError*>(&e)) return "OverloadedError";
  return "Error";
}

py::object from_error(const Error& e) {
  py::module_ errors = py::module_::import("dynamodb_cache.errors");
  py::object cls = errors.attr(class_name(e));
  py::object exc = cls(py::str(e.what()));
  exc.attr("kind") = py::str(to_string(e.kind()));
  exc.attr("retryable") = py::bool_(e.retryable());
  if (auto* s = dynamic_cast<const ServiceError*>(&e)) {
    exc.attr("name") = py::str(s->name());
    exc.attr("status") = py::int_(s->http_status());
    exc.attr("request_id") = py::str(s->request_id());
    exc.attr("service_message") = py::str(s->service_message());
  }
  if (auto* r = dynamic_cast<const ResourceNotFoundError*>(&e)) exc.attr("table") = py::str(r->table());
  if (auto* t = dynamic_cast<const TransportError*>(&e))
    exc.attr("request_sent") = py::bool_(t->request_sent());
  return exc;
}

}  // namespace

py::object to_python_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (py::error_already_set& e) {
    return e.value();  // the user's own exception, unchanged
  } catch (const Error& e) {
    return from_error(e);
  } catch (const std::bad_alloc&) {
    return py::module_::import("builtins").attr("MemoryError")();
  } catch (const std::exception& e) {
    py::object exc = py::module_::import("dynamodb_cache.errors").attr("Error")(py::str(e.what()));
    exc.attr("kind") = py::str("internal");
    return exc;
  }
}

void register_errors(py::module_&) {
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object exc = from_error(e);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
}

}  // namespace dynamodb_cache::python
